// The services image (deploy/Dockerfile, target services) runs gateway, billing and orchestrator
// without the packages only inference uses, which package.json lists once under
// cutline.inferenceOnlyDependencies. Checked here: nothing outside services/inference/ imports one
// of them or names it in a string, every dependency that inference alone imports is listed, each
// listed one is a production dependency, and the Dockerfiles prune them for the services target
// and only for it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, relative, resolve, sep } from "node:path";
import { describe, test } from "node:test";
import ts from "typescript";
import { runs, stagesBehind, stagesOf } from "./dockerfile.testing.ts";

const root = resolve(import.meta.dirname, "..");
const servicesDir = join(root, "services");

interface PackageJson {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  cutline?: { inferenceOnlyDependencies?: string[] };
}
const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as PackageJson;
const inferenceOnly = packageJson.cutline?.inferenceOnlyDependencies ?? [];
const production = new Set([...Object.keys(packageJson.dependencies ?? {}), ...Object.keys(packageJson.optionalDependencies ?? {})]);

/** What the images copy of services/: every source and data file but specs, test fixtures and test data. */
function* shippedFiles(directory: string): Generator<string> {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "testdata") yield* shippedFiles(path);
    } else if (/\.(ts|mts|mjs|js|json)$/.test(entry.name) && !/\.(spec|testing)\.ts$/.test(entry.name)) yield path;
  }
}

/** A service folder, "common", or "entry" for the files directly under services/. */
function ownerOf(file: string): string {
  const [first, ...rest] = relative(servicesDir, file).split(sep);
  return rest.length === 0 ? "entry" : first!;
}

/** The npm package a specifier names (`@scope/name/sub` → `@scope/name`); undefined for paths and Node built-ins. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith(".") || specifier.startsWith("/") || isBuiltin(specifier)) return undefined;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** Packages a source file imports: static and dynamic imports, re-exports, require calls. */
function importedPackages(source: string): string[] {
  const { importedFiles } = ts.preProcessFile(source, true, true);
  return importedFiles.flatMap((file) => packageOf(file.fileName) ?? []);
}

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
/**
 * Which of `candidates` a file names in a string literal, alone or with a subpath: how
 * `createRequire(...)("libheif-js/wasm-bundle")` and the model manifests' `"npmPackage"` reach a
 * package that no import names.
 */
function namedPackages(source: string, candidates: readonly string[]): string[] {
  return candidates.filter((name) => new RegExp(`["'\`]${escaped(name)}(?:/[^"'\`\\s]*)?["'\`]`).test(source));
}

interface Use {
  name: string;
  owner: string;
  file: string;
  how: "import" | "string";
}
function usesIn(file: string): Use[] {
  const source = readFileSync(file, "utf8");
  const use = (how: Use["how"]) => (name: string) => ({ name, owner: ownerOf(file), file: relative(root, file), how });
  const imports = file.endsWith(".json") ? [] : importedPackages(source).map(use("import"));
  return [...imports, ...namedPackages(source, inferenceOnly).map(use("string"))];
}
const uses = [...shippedFiles(servicesDir)].flatMap(usesIn);

describe("inference-only dependencies", () => {
  test("package.json lists them once, sorted, each a production dependency", () => {
    assert.ok(inferenceOnly.length > 0, "package.json cutline.inferenceOnlyDependencies");
    assert.deepEqual(inferenceOnly, [...new Set(inferenceOnly)].sort(), "sorted, no duplicates");
    for (const name of inferenceOnly) assert.ok(production.has(name), `${name}: in dependencies or optionalDependencies`);
    // The two the Dockerfile's services target checks for by name.
    for (const name of ["onnxruntime-node", "@imgly/background-removal-data"]) assert.ok(inferenceOnly.includes(name), name);
  });

  test("nothing outside services/inference/ imports one or names it in a string", () => {
    const outside = uses.filter((use) => inferenceOnly.includes(use.name) && use.owner !== "inference");
    assert.deepEqual(
      outside.map((use) => `${use.file} (${use.how}) ${use.name}`),
      [],
      "the services image has none of these: move the code into services/inference/, or take the package off the list",
    );
  });

  test("every dependency that inference alone imports is on the list", () => {
    const importers = new Map<string, Set<string>>();
    for (const use of uses.filter((candidate) => candidate.how === "import")) {
      importers.set(use.name, (importers.get(use.name) ?? new Set()).add(use.owner));
    }
    const unlisted = [...importers]
      .filter(([name, owners]) => production.has(name) && owners.size === 1 && owners.has("inference") && !inferenceOnly.includes(name))
      .map(([name]) => name);
    assert.deepEqual(unlisted, [], "add them to package.json cutline.inferenceOnlyDependencies, so the services image leaves them out");
  });

  test("the scan sees each way inference reaches them, and reads specifiers as npm does", () => {
    const found = (name: string, how: Use["how"]) => uses.some((use) => use.name === name && use.how === how && use.owner === "inference");
    assert.ok(found("onnxruntime-node", "import"));
    assert.ok(found("libheif-js", "string"), "createRequire(import.meta.url)(\"libheif-js/wasm-bundle\")");
    assert.ok(found("@imgly/background-removal-data", "string"), "the model manifests' npmPackage");
    assert.deepEqual(
      importedPackages(
        [
          `import * as ort from "onnxruntime-node";`,
          `export { x } from "@bufbuild/protobuf/wire";`,
          `const m = await import("bmp-ts");`,
          `import { join } from "node:path";`,
          `import { readFileSync } from "fs";`,
          `import { y } from "./local.ts";`,
        ].join("\n"),
      ),
      ["onnxruntime-node", "@bufbuild/protobuf", "bmp-ts"],
    );
    const list = ["@imgly/background-removal-data", "bmp-ts", "libheif-js"];
    assert.deepEqual(namedPackages(`createRequire(import.meta.url).resolve("@imgly/background-removal-data/package.json")`, list), ["@imgly/background-removal-data"]);
    assert.deepEqual(namedPackages(`{ "npmPackage": "@imgly/background-removal-data" }`, list), ["@imgly/background-removal-data"]);
    assert.deepEqual(namedPackages("const heif = require(`libheif-js/wasm-bundle`);", list), ["libheif-js"]);
    assert.deepEqual(namedPackages(`// Header sizes bmp-ts reads\nconst note = "decoded as bmp-ts does";`, list), [], "prose is not a package name");
  });
});

// ---- the Dockerfiles --------------------------------------------------------------------------

const PRUNE = /npm uninstall --no-save --omit=dev \$\(node -p "([^"]+)"\)/;

describe("deploy/Dockerfile targets", () => {
  const stages = stagesOf(readFileSync(join(root, "deploy/Dockerfile"), "utf8"));

  test("services: production dependencies pruned of the inference-only list, and checked", () => {
    const behind = runs(stagesBehind(stages, "services"));
    assert.ok(behind.some((run) => run.includes("npm ci --omit=dev")), "npm ci --omit=dev");
    const prune = behind.map((run) => PRUNE.exec(run)).find((match) => match !== null);
    assert.ok(prune, "npm uninstall --no-save --omit=dev $(node -p \"…\")");
    // The expression the build runs, run here against the same package.json.
    const names = execFileSync(process.execPath, ["-p", prune[1]!], { cwd: root, encoding: "utf8" }).trim();
    assert.equal(names, inferenceOnly.join(" "), "it reads package.json cutline.inferenceOnlyDependencies");
    for (const name of ["onnxruntime-node", "@imgly/background-removal-data"]) {
      assert.ok(behind.some((run) => run.includes(`test ! -e node_modules/${name}`)), `the build fails if ${name} is still there`);
    }
  });

  test("services: copies the three services and services/common/, not inference", () => {
    const services = stages.find((stage) => stage.name === "services")!;
    const copied = services.instructions.flatMap((instruction) => {
      const copy = /^COPY\s+(?!--from)(.+)\s+\S+$/i.exec(instruction);
      return copy ? copy[1]!.split(/\s+/).filter((source) => source.startsWith("services")) : [];
    });
    // services/migrate.ts: the pre-deploy migrations of the three (k8s/migrate), run from this image.
    assert.deepEqual(copied.sort(), ["services/billing", "services/common", "services/gateway", "services/migrate.ts", "services/orchestrator"]);
    assert.ok(services.instructions.some((instruction) => /^ARG SERVICE=(gateway|billing|orchestrator)$/.test(instruction)), "defaults to one of its services");
  });

  test("inference: the production dependencies (nothing uninstalled) and the model, and it is the default target", () => {
    const behind = runs(stagesBehind(stages, "inference"));
    assert.ok(behind.some((run) => run.includes("npm ci --omit=dev")), "npm ci --omit=dev");
    assert.ok(!behind.some((run) => /npm (uninstall|prune|rm)\b/.test(run)), "nothing pruned");
    assert.ok(behind.some((run) => run.includes("test -f node_modules/@imgly/background-removal-data/package.json")), "the build checks the model is there");
    assert.equal(stages.at(-1)!.name, "inference", "the last stage, which a build without --target gives");
  });

  test("Dockerfile.gpu: inference on CUDA, nothing pruned", () => {
    const gpu = stagesOf(readFileSync(join(root, "deploy/Dockerfile.gpu"), "utf8"));
    assert.equal(gpu.at(-1)!.name, "inference");
    const behind = runs(stagesBehind(gpu, "inference"));
    assert.ok(!behind.some((run) => /npm (uninstall|prune|rm)\b/.test(run)), "nothing pruned");
    assert.ok(behind.some((run) => run.includes("test -f node_modules/@imgly/background-removal-data/package.json")), "the build checks the model is there");
  });
});

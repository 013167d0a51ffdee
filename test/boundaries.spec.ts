// The service boundaries, checked on every import: a service folder imports only itself and
// services/common/ (generated code included); services/common/ imports no service. Only the
// single-node entry layer (the files directly under services/) may wire all four together. The
// command-line client (cli/, bin/) is a client: it reaches the gateway through the generated code
// and the few shared helpers of services/common/ a client needs, never through a service's modules.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, test } from "node:test";
import ts from "typescript";

const root = resolve(import.meta.dirname, "..");
const servicesDir = join(root, "services");
const SERVICES = ["gateway", "billing", "orchestrator", "inference"] as const;

function* sourceFiles(directory: string): Generator<string> {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|mts|mjs|js)$/.test(entry.name)) yield path;
  }
}

/** Every module a file names: static and dynamic imports, re-exports, and worker scripts (`new URL("./x.ts", import.meta.url)`). */
export function importsOf(source: string): string[] {
  const { importedFiles } = ts.preProcessFile(source, true, true);
  const workerScripts = [...source.matchAll(/new URL\(\s*["'`]([^"'`]+)["'`]\s*,\s*import\.meta\.url\s*\)/g)].map((match) => match[1]!);
  return [...importedFiles.map((file) => file.fileName), ...workerScripts];
}

/** The folder a path belongs to: a service, "common", "entry" (files directly under services/), or "outside". */
export function ownerOf(path: string): string {
  const inServices = relative(servicesDir, path);
  if (inServices.startsWith("..")) return "outside";
  const [first, ...rest] = inServices.split(sep);
  return rest.length === 0 ? "entry" : first!;
}

/** What a file may import, by its owner; undefined when anything goes. */
function allowedFor(owner: string): Set<string> | undefined {
  if (owner === "entry") return undefined;
  if (owner === "common") return new Set(["common"]);
  return new Set([owner, "common"]);
}

export interface Violation {
  file: string;
  specifier: string;
  reaches: string;
}

// Specs and test fixtures may use the harness, which picks the database and NATS for a run.
const harness = join(root, "test", "harness.ts");
const isTestCode = (file: string) => /\.(spec|testing)\.ts$/.test(file);

/** Cross-boundary imports of one file (relative specifiers only: packages are not services). */
export function violationsIn(file: string, source: string): Violation[] {
  const allowed = allowedFor(ownerOf(file));
  if (allowed === undefined) return [];
  const violations: Violation[] = [];
  for (const specifier of importsOf(source)) {
    if (!specifier.startsWith(".")) continue;
    const target = resolve(dirname(file), specifier);
    const reaches = ownerOf(target);
    if (allowed.has(reaches) || (isTestCode(file) && target === harness)) continue;
    violations.push({ file: relative(root, file), specifier, reaches: reaches === "outside" ? relative(root, target) : `services/${reaches}/` });
  }
  return violations;
}

const cliDir = join(root, "cli");
const generatedDir = join(servicesDir, "common", "gen");
/** The shared helpers a client may use: credits at the edge, and the name of the reason header. */
// Browser-safe modules of services/common/ that import only generated code: what a client shares with the server.
const CLIENT_HELPERS = new Set([
  join(servicesDir, "common", "credits.ts"),
  join(servicesDir, "common", "errors.ts"),
  join(servicesDir, "common", "finished-job-statuses.ts"),
  join(servicesDir, "common", "video", "video-formats.ts"),
]);

/** Imports of a CLI file (cli/ or bin/) that reach past cli/, the generated code and CLIENT_HELPERS. */
export function clientViolationsIn(file: string, source: string): Violation[] {
  const violations: Violation[] = [];
  for (const specifier of importsOf(source)) {
    if (!specifier.startsWith(".")) continue;
    const target = resolve(dirname(file), specifier);
    const allowed = !relative(cliDir, target).startsWith("..") || !relative(generatedDir, target).startsWith("..") || CLIENT_HELPERS.has(target);
    if (!allowed) violations.push({ file: relative(root, file), specifier, reaches: relative(root, target) });
  }
  return violations;
}

describe("service boundaries", () => {
  test("no service imports another service, and services/common/ imports none", () => {
    const violations = [...sourceFiles(servicesDir)].flatMap((file) => violationsIn(file, readFileSync(file, "utf8")));
    assert.deepEqual(
      violations.map((violation) => `${violation.file} imports ${violation.specifier} (${violation.reaches})`),
      [],
      "cross-service imports: move what both sides need to services/common/, or the test to test/",
    );
  });

  test("the check sees every kind of import it must refuse", () => {
    const gatewayFile = join(servicesDir, "gateway", "handlers", "example.ts");
    const source = [
      `import { a } from "../../inference/index.ts";`,
      `export { b } from "../../billing/billing.config.ts";`,
      `const c = await import("../../orchestrator/index.ts");`,
      `const worker = new URL("../../inference/runtime/x.thread.ts", import.meta.url);`,
      `import { d } from "../../../test/harness.ts";`,
      `import { e } from "../../common/config.loader.ts";`,
      `import { f } from "../image-jobs.ts";`,
      `import sharp from "sharp";`,
    ].join("\n");
    assert.deepEqual(
      violationsIn(gatewayFile, source).map((violation) => violation.reaches),
      ["services/inference/", "services/billing/", "services/orchestrator/", "test/harness.ts", "services/inference/"],
    );
    const commonFile = join(servicesDir, "common", "images", "example.ts");
    assert.deepEqual(
      violationsIn(commonFile, `import { g } from "../../gateway/gateway.config.ts";\nimport { h } from "../config.loader.ts";`).map((violation) => violation.reaches),
      ["services/gateway/"],
    );
    const specFile = join(servicesDir, "gateway", "example.spec.ts");
    assert.deepEqual(violationsIn(specFile, `import { d } from "../../test/harness.ts";`), [], "specs may use the test harness");
    const entryFile = join(servicesDir, "single-node.ts");
    assert.deepEqual(violationsIn(entryFile, `import { i } from "./inference/index.ts";\nimport { j } from "./billing/index.ts";`), []);
    for (const service of SERVICES) assert.equal(ownerOf(join(servicesDir, service, "main.ts")), service);
  });
});

describe("the command-line client's boundary", () => {
  test("cli/ and bin/ import only cli/, the generated code and the client helpers of services/common/", () => {
    const files = [...sourceFiles(cliDir), ...sourceFiles(join(root, "bin"))];
    assert.ok(files.length > 0, "cli/ has sources");
    const violations = files.flatMap((file) => clientViolationsIn(file, readFileSync(file, "utf8")));
    assert.deepEqual(
      violations.map((violation) => `${violation.file} imports ${violation.specifier} (${violation.reaches})`),
      [],
      "the CLI is a client: call the gateway through services/common/gen, or move a pure helper to services/common/ and list it here",
    );
  });

  test("the check refuses a service's module and the server-side common code", () => {
    const cliFile = join(cliDir, "example.ts");
    const source = [
      `import { a } from "../services/gateway/image-jobs.ts";`,
      `import { b } from "../services/common/server.ts";`,
      `import { c } from "../test/harness.ts";`,
      `import { d } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";`,
      `import { e } from "../services/common/credits.ts";`,
      `import { f } from "./connection.ts";`,
      `import cliProgress from "cli-progress";`,
    ].join("\n");
    assert.deepEqual(
      clientViolationsIn(cliFile, source).map((violation) => violation.reaches),
      ["services/gateway/image-jobs.ts", "services/common/server.ts", "test/harness.ts"],
    );
  });
});

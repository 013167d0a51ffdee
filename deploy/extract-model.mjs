// Image build step: writes the one model inference will load as <directory>/<name>.onnx, joined
// from @imgly/background-removal-data's chunks and checked against the sha256 of
// services/inference/models/<name>.model.json, so the image carries that model alone (in its own
// layer) instead of the package's every model and its browser runtime (212 MB).
//   node deploy/extract-model.mjs <model name> <directory>
// Exit 1, naming the problem, on an unknown model, a missing chunk or a checksum mismatch.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const [name, directory] = process.argv.slice(2);
if (!name || !directory) {
  console.error("usage: node deploy/extract-model.mjs <model name> <directory>");
  process.exit(2);
}
try {
  const root = join(import.meta.dirname, "..");
  const model = JSON.parse(readFileSync(join(root, "services/inference/models", `${name}.model.json`), "utf8"));
  const require = createRequire(join(root, "package.json"));
  const dist = join(dirname(require.resolve(`${model.source.npmPackage}/package.json`)), "dist");
  const resources = JSON.parse(readFileSync(join(dist, "resources.json"), "utf8"));
  const entry = resources[model.source.resource];
  if (!entry) throw new Error(`${dist}/resources.json has no entry ${model.source.resource}`);
  const bytes = Buffer.concat(entry.chunks.map((chunk) => readFileSync(join(dist, chunk.hash))));
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (bytes.length !== model.bytes || sha256 !== model.sha256) {
    throw new Error(`${name}: joined ${bytes.length} bytes with sha256 ${sha256}; ${name}.model.json expects ${model.bytes} bytes with ${model.sha256}`);
  }
  mkdirSync(directory, { recursive: true });
  writeFileSync(join(directory, `${name}.onnx`), bytes);
  console.log(`${name}: ${bytes.length} bytes, sha256 ${sha256} → ${join(directory, `${name}.onnx`)}`);
} catch (error) {
  console.error(`extract-model: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

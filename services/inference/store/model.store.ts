import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readFile, readdir, rename, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { InferenceError } from "../domain/inference.errors.ts";

/** What a `models/<name>.model.json` file says about one model. */
export interface ModelDescription {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly source: { readonly npmPackage: string; readonly resource: string };
  readonly sha256: string;
  readonly bytes: number;
  readonly input: {
    readonly name: string;
    /** NCHW; dim 0 is made dynamic at load time. */
    readonly shape: readonly [number, number, number, number];
    readonly layout: "NCHW";
    readonly channels: "RGB";
    /** (pixel - mean) / std, per channel, on 0–255 values. */
    readonly normalisation: { readonly mean: readonly number[]; readonly std: readonly number[] };
  };
  readonly output: { readonly name: string; readonly shape: readonly number[]; readonly activation: "sigmoid" };
}

const modelsDirectory = join(import.meta.dirname, "..", "models");

export async function listModels(): Promise<string[]> {
  const files = await readdir(modelsDirectory);
  return files.filter((file) => file.endsWith(".model.json")).map((file) => file.slice(0, -".model.json".length));
}

export async function describeModel(name: string): Promise<ModelDescription> {
  const path = join(modelsDirectory, `${name}.model.json`);
  if (!existsSync(path)) {
    throw new InferenceError("model_unavailable", `model "${name}" is not described in ${modelsDirectory}`);
  }
  return JSON.parse(await readFile(path, "utf8")) as ModelDescription;
}

interface ResourceEntry {
  chunks: { hash: string; offsets: [number, number] }[];
  size: number;
}

/**
 * The model's bytes, checked against the sha256 in its description. The npm package stores each
 * model as chunks named by their own sha256 and listed in `dist/resources.json`; they are joined
 * in order and the whole file is hashed, so a missing, reordered or altered chunk fails here and
 * never reaches onnxruntime. `directory` overrides the package's `dist/` (same layout), or may
 * hold the whole model as `<name>.onnx`.
 */
export async function loadModelBytes(model: ModelDescription, directory?: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  const wholeFile = directory === undefined ? undefined : join(directory, `${model.name}.onnx`);
  if (wholeFile !== undefined && existsSync(wholeFile)) {
    bytes = await readFile(wholeFile);
  } else {
    const base = directory ?? packageDistDirectory(model.source.npmPackage);
    const resources = JSON.parse(await readFile(join(base, "resources.json"), "utf8")) as Record<string, ResourceEntry>;
    const entry = resources[model.source.resource];
    if (entry === undefined) {
      throw new InferenceError("model_unavailable", `${base}/resources.json has no entry ${model.source.resource}`);
    }
    // Each chunk is read straight into its place, all at once: reading them into buffers of their
    // own and joining those after touched every page twice and took twice as long.
    bytes = Buffer.allocUnsafe(entry.size);
    await Promise.all(entry.chunks.map(async (chunk) => readChunkInto(bytes, join(base, chunk.hash), chunk.offsets, model.name)));
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (sha256 !== model.sha256) {
    throw new InferenceError(
      "model_unavailable",
      `model ${model.name}@${model.version} failed its integrity check: sha256 ${sha256}, expected ${model.sha256}`,
    );
  }
  return bytes;
}

async function readChunkInto(target: Uint8Array, path: string, [start, end]: [number, number], modelName: string): Promise<void> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    if (size !== end - start || end > target.length) {
      throw new InferenceError("model_unavailable", `chunk ${basename(path)} of ${modelName} has ${size} bytes, expected ${end - start}`);
    }
    let done = 0;
    while (done < size) {
      const { bytesRead } = await file.read(target, start + done, size - done, done);
      if (bytesRead === 0) throw new InferenceError("model_unavailable", `chunk ${basename(path)} of ${modelName} ended after ${done} of ${size} bytes`);
      done += bytesRead;
    }
  } finally {
    await file.close();
  }
}

function packageDistDirectory(npmPackage: string): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve(`${npmPackage}/package.json`)), "dist");
  } catch (error) {
    throw new InferenceError("model_unavailable", `npm package ${npmPackage} with the model is not installed`, {
      cause: error,
    });
  }
}

/** Where the edited model came from: a cache hit, or the source (the cache missing, stale or unusable). */
export interface EditedModel {
  bytes: Uint8Array;
  cache: "hit" | "written" | { unused: string };
  /** Why a cached edit that was there was not used (it did not match its sha256). */
  replaced?: string;
}

/**
 * The model as `edit` leaves it, kept in `cacheDirectory` between starts: editing the 88 MB graph
 * (a protobuf decode and encode) took as long as reading and hashing it. The cached file is named
 * by a hash of the source's sha256 and `editKey` (the editor's own code), so a new model or a
 * changed editor never reads an old edit, and its bytes are checked against the sha256 written
 * beside it when it was made from the verified source. The directory must be this user's and
 * writable by no one else (one in a shared place such as /tmp could be another user's). Anything
 * wrong with the cache (missing, altered, unwritable, not ours) falls back to the source, which is
 * verified as always.
 */
export async function loadEditedModel(
  model: ModelDescription,
  sources: { directory: string | undefined; cacheDirectory: string },
  editKey: string,
  edit: (bytes: Uint8Array) => Uint8Array,
): Promise<EditedModel> {
  const key = createHash("sha256").update(`${model.sha256}\n${editKey}`).digest("hex").slice(0, 32);
  const file = join(sources.cacheDirectory, `${model.name}.${key}.onnx`);
  const hashFile = `${file}.sha256`;
  let replaced: string | undefined;
  const trusted = await trustedDirectory(sources.cacheDirectory);
  if (trusted === true && existsSync(file) && existsSync(hashFile)) {
    const [bytes, expected] = await Promise.all([readFile(file), readFile(hashFile, "utf8")]);
    if (createHash("sha256").update(bytes).digest("hex") === expected.trim()) return { bytes, cache: "hit" };
    replaced = `the cached edit ${file} did not match its sha256`;
  }
  const bytes = edit(await loadModelBytes(model, sources.directory));
  if (trusted !== true && trusted !== undefined) return { bytes, cache: { unused: trusted } };
  try {
    await mkdir(sources.cacheDirectory, { recursive: true, mode: 0o700 });
    // Written under names of their own and renamed into place: a process reading meanwhile sees the whole file or none.
    const partial = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    await writeFile(partial, bytes);
    await rename(partial, file);
    await writeFile(`${partial}.sha256`, `${createHash("sha256").update(bytes).digest("hex")}\n`);
    await rename(`${partial}.sha256`, hashFile);
    return { bytes, cache: "written", replaced };
  } catch (error) {
    return { bytes, cache: { unused: `${sources.cacheDirectory} is not writable: ${error instanceof Error ? error.message : String(error)}` }, replaced };
  }
}

/** True for a directory of this user's that no one else may write to; undefined where it does not exist yet; else why not. */
async function trustedDirectory(directory: string): Promise<true | string | undefined> {
  let info;
  try {
    info = await stat(directory);
  } catch {
    return undefined;
  }
  if (!info.isDirectory()) return `${directory} is not a directory`;
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) return `${directory} belongs to another user (uid ${info.uid})`;
  if ((info.mode & 0o022) !== 0) return `${directory} is writable by other users (mode ${(info.mode & 0o777).toString(8)})`;
  return true;
}

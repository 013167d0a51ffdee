// The model loader against the npm package's real chunks: joined in place and hashed, and a
// chunk that is altered, short or missing is refused with the model named, before onnxruntime.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { describeModel, loadEditedModel, loadModelBytes } from "./model.store.ts";

const packageDist = join(dirname(createRequire(import.meta.url).resolve("@imgly/background-removal-data/package.json")), "dist");
const resources = JSON.parse(readFileSync(join(packageDist, "resources.json"), "utf8")) as Record<string, { chunks: { hash: string }[] }>;
const directories: string[] = [];

/** A copy of the package's dist/ made of links to its chunks, with `edit` applied to the first chunk of `resource`. */
function distWith(resource: string, edit: (chunk: Buffer) => Buffer | undefined): string {
  const directory = mkdtempSync(join(tmpdir(), "cutline-model-store-"));
  directories.push(directory);
  writeFileSync(join(directory, "resources.json"), JSON.stringify(resources));
  const target = resources[resource]!.chunks[0]!.hash;
  for (const { hash } of Object.values(resources).flatMap((entry) => entry.chunks)) {
    if (hash !== target) symlinkSync(join(packageDist, hash), join(directory, hash));
  }
  const edited = edit(readFileSync(join(packageDist, target)));
  if (edited !== undefined) writeFileSync(join(directory, target), edited);
  return directory;
}

after(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

describe("loadModelBytes", () => {
  it("joins the package's chunks into the model its description hashes", async () => {
    const model = await describeModel("isnet-small");
    const bytes = await loadModelBytes(model);
    assert.equal(bytes.length, model.bytes);
    assert.equal(createHash("sha256").update(bytes).digest("hex"), model.sha256);
  });

  it("refuses a model with one byte changed, naming the model and both hashes", async () => {
    const model = await describeModel("isnet-small");
    const directory = distWith(model.source.resource, (chunk) => {
      const copy = Buffer.from(chunk);
      copy[1000] = copy[1000]! ^ 0xff;
      return copy;
    });
    await assert.rejects(loadModelBytes(model, directory), (error: Error) => {
      assert.match(error.message, /isnet-small@1\.4\.5 failed its integrity check: sha256 [0-9a-f]{64}, expected 7001d607/);
      return true;
    });
  });

  it("refuses a short chunk and a missing one, naming the chunk", async () => {
    const model = await describeModel("isnet-small");
    const first = resources[model.source.resource]!.chunks[0]!.hash;
    const short = distWith(model.source.resource, (chunk) => chunk.subarray(0, chunk.length - 1));
    await assert.rejects(loadModelBytes(model, short), new RegExp(`chunk ${first} of isnet-small has \\d+ bytes, expected \\d+`));
    const missing = distWith(model.source.resource, () => undefined);
    await assert.rejects(loadModelBytes(model, missing), /ENOENT/);
  });
});

describe("loadEditedModel", () => {
  /** A stand-in edit that marks its output and counts its calls. */
  const counting = () => {
    const edit = (bytes: Uint8Array) => {
      edit.calls++;
      return Buffer.concat([bytes.subarray(0, 1000), Buffer.from("edited")]);
    };
    edit.calls = 0;
    return edit;
  };

  it("edits once, then reads the edit kept in the cache; another editor key edits again", async () => {
    const model = await describeModel("isnet-small");
    const cacheDirectory = mkdtempSync(join(tmpdir(), "cutline-model-cache-"));
    directories.push(cacheDirectory);
    const edit = counting();
    const first = await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor-1", edit);
    assert.equal(first.cache, "written");
    const second = await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor-1", edit);
    assert.equal(second.cache, "hit");
    assert.deepEqual(Buffer.from(second.bytes), Buffer.from(first.bytes));
    assert.equal(edit.calls, 1, "the second load read the cache");
    assert.equal((await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor-2", edit)).cache, "written");
    assert.equal(edit.calls, 2, "a changed editor never reads an old edit");
  });

  it("edits the verified source again when the cached file was altered, and replaces it", async () => {
    const model = await describeModel("isnet-small");
    const cacheDirectory = mkdtempSync(join(tmpdir(), "cutline-model-cache-"));
    directories.push(cacheDirectory);
    const edit = counting();
    const { bytes } = await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor", edit);
    const cached = join(cacheDirectory, readdirSync(cacheDirectory).find((name) => name.endsWith(".onnx"))!);
    writeFileSync(cached, Buffer.concat([Buffer.from(bytes), Buffer.from("tampered")]));
    const again = await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor", edit);
    assert.equal(again.cache, "written");
    assert.match(again.replaced ?? "", /did not match its sha256/);
    assert.deepEqual(Buffer.from(again.bytes), Buffer.from(bytes));
    assert.equal(edit.calls, 2);
    assert.equal((await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor", edit)).cache, "hit");
  });

  it("still loads, and says why, where the cache directory is a file", async () => {
    const model = await describeModel("isnet-small");
    const parent = mkdtempSync(join(tmpdir(), "cutline-model-cache-"));
    directories.push(parent);
    const notADirectory = join(parent, "file");
    writeFileSync(notADirectory, "x");
    const loaded = await loadEditedModel(model, { directory: undefined, cacheDirectory: notADirectory }, "editor", counting());
    assert.ok(loaded.bytes.length > 0);
    assert.match((loaded.cache as { unused: string }).unused, /is not a directory/);
  });

  it("neither reads nor writes a cache directory other users may write to", async () => {
    const model = await describeModel("isnet-small");
    const cacheDirectory = mkdtempSync(join(tmpdir(), "cutline-model-cache-"));
    directories.push(cacheDirectory);
    const edit = counting();
    await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor", edit);
    chmodSync(cacheDirectory, 0o777);
    const loaded = await loadEditedModel(model, { directory: undefined, cacheDirectory }, "editor", edit);
    assert.match((loaded.cache as { unused: string }).unused, /is writable by other users \(mode 777\)/);
    assert.equal(edit.calls, 2, "the edit another user could have replaced is not read");
  });
});

// The blob store contract: every adapter runs this suite (see blob-store.spec.ts).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { BlobStore, BlobStoreLimits } from "./blob-store.ts";
import { sleep, type ContractRun } from "./contract-support.ts";

export interface BlobStoreFixture {
  readonly blobStore: BlobStore;
  /** Closes the store and deletes whatever it created. */
  cleanUp(): Promise<void>;
}

export type BlobStoreFactory = (limits: BlobStoreLimits) => Promise<BlobStoreFixture>;

const bytes = (text: string) => new TextEncoder().encode(text);

export function describeBlobStoreContract(name: string, factory: BlobStoreFactory, run: ContractRun = {}): void {
  describe(`BlobStore contract: ${name}`, { skip: run.skip }, () => {
    const fixtures: BlobStoreFixture[] = [];
    const open = async (limits: BlobStoreLimits = {}) => {
      const fixture = await factory(limits);
      fixtures.push(fixture);
      return fixture.blobStore;
    };
    after(async () => {
      await Promise.all(fixtures.map((fixture) => fixture.cleanUp()));
    });

    test("puts, gets, replaces and deletes, keeping the content type", async () => {
      const store = await open();
      const key = "inputs/job 1/photo.png";
      await store.put(key, bytes("png bytes"), { contentType: "image/png" });
      assert.deepEqual(await store.get(key), { data: bytes("png bytes"), contentType: "image/png" });
      await store.put(key, bytes("webp bytes"), { contentType: "image/webp" });
      assert.deepEqual(await store.get(key), { data: bytes("webp bytes"), contentType: "image/webp" });
      await store.put("no-type", bytes("?"));
      assert.deepEqual(await store.get("no-type"), { data: bytes("?"), contentType: "application/octet-stream" });
      await store.put("empty", new Uint8Array(0), { contentType: "text/plain" });
      assert.deepEqual(await store.get("empty"), { data: new Uint8Array(0), contentType: "text/plain" });
      await store.delete(key);
      assert.equal(await store.get(key), undefined);
    });

    test("answers undefined for a missing key and deletes a missing key without error", async () => {
      const store = await open();
      assert.equal(await store.get("never-put"), undefined);
      await store.delete("never-put");
      await store.put("once", bytes("x"));
      await store.delete("once");
      await store.delete("once");
      assert.equal(await store.get("once"), undefined);
    });

    test("forgets a blob after its TTL", async () => {
      const store = await open({ ttlMs: 1000 });
      await store.put("short-lived", bytes("x"), { contentType: "text/plain" });
      assert.deepEqual(await store.get("short-lived"), { data: bytes("x"), contentType: "text/plain" });
      await sleep(1200);
      assert.equal(await store.get("short-lived"), undefined);
    });

    test("round-trips a 5 MB blob byte for byte", async () => {
      const store = await open();
      const data = new Uint8Array(randomBytes(5 * 1024 * 1024));
      await store.put("large", data, { contentType: "video/mp4" });
      const result = await store.get("large");
      assert.ok(result);
      assert.equal(result.contentType, "video/mp4");
      assert.equal(result.data.length, data.length);
      assert.ok(Buffer.from(result.data).equals(Buffer.from(data)), "the bytes differ");
    });

    test("streams a file in and out (putFile, getToFile), keeping the content type; a missing key writes no file", async () => {
      const store = await open();
      const directory = mkdtempSync(join(tmpdir(), "blob-contract-"));
      try {
        const data = randomBytes(3 * 1024 * 1024 + 17);
        writeFileSync(join(directory, "in.webm"), data);
        await store.putFile("videos/in", join(directory, "in.webm"), { contentType: "video/webm" });
        const read = await store.getToFile("videos/in", join(directory, "out.webm"));
        assert.deepEqual(read, { contentType: "video/webm", bytes: data.length });
        assert.ok(readFileSync(join(directory, "out.webm")).equals(data), "the bytes differ");
        // The same blob through the in-memory calls.
        const whole = await store.get("videos/in");
        assert.equal(whole?.contentType, "video/webm");
        assert.ok(Buffer.from(whole!.data).equals(data));
        await store.put("small", bytes("abc"));
        assert.deepEqual(await store.getToFile("small", join(directory, "small")), { contentType: "application/octet-stream", bytes: 3 });
        assert.equal(readFileSync(join(directory, "small"), "utf8"), "abc");
        assert.equal(await store.getToFile("never-put", join(directory, "missing")), undefined);
        assert.equal(existsSync(join(directory, "missing")), false);
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    });

    test("stat tells type and size without the bytes; getStream streams them; both undefined for a missing or deleted key", async () => {
      const store = await open();
      const data = new Uint8Array(randomBytes(2 * 1024 * 1024 + 5));
      await store.put("videos/result", data, { contentType: "video/webm" });
      assert.deepEqual(await store.stat("videos/result"), { contentType: "video/webm", bytes: data.length });
      const streamed = await store.getStream("videos/result");
      assert.ok(streamed);
      assert.deepEqual([streamed.contentType, streamed.bytes], ["video/webm", data.length]);
      const chunks: Buffer[] = [];
      for await (const chunk of streamed.stream) chunks.push(Buffer.from(chunk as Uint8Array));
      assert.ok(Buffer.concat(chunks).equals(Buffer.from(data)), "the streamed bytes differ");
      // A stream given up part-way releases what it held.
      const abandoned = await store.getStream("videos/result");
      abandoned!.stream.destroy();
      assert.equal(await store.stat("never-put"), undefined);
      assert.equal(await store.getStream("never-put"), undefined);
      await store.delete("videos/result");
      assert.equal(await store.stat("videos/result"), undefined);
      assert.equal(await store.getStream("videos/result"), undefined);
    });
  });
}

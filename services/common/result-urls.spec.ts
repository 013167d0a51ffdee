import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "./config.loader.ts";
import { createResultUrlSigner, resultUrlConfigSpec, resultUrlKeyOf } from "./result-urls.ts";

const KEY = "k".repeat(40);
const NOW = new Date("2026-11-27T12:00:00Z");

describe("signed result URLs", () => {
  const signer = createResultUrlSigner({ key: KEY, publicUrl: "https://api.example.com/", ttlSeconds: 86_400 });
  const parts = (url: string) => {
    const parsed = new URL(url);
    return { path: parsed.pathname, expires: parsed.searchParams.get("expires"), signature: parsed.searchParams.get("signature") };
  };

  test("a URL is absolute, under the public URL, and verifies until it expires", () => {
    const { path, expires, signature } = parts(signer.urlFor("job-1", NOW));
    assert.equal(path, "/v1/results/job-1");
    assert.equal(Number(expires), NOW.getTime() / 1000 + 86_400);
    assert.deepEqual(signer.verify("job-1", expires, signature, NOW), { ok: true });
    assert.deepEqual(signer.verify("job-1", expires, signature, new Date(NOW.getTime() + 86_399_000)), { ok: true });
    assert.deepEqual(signer.verify("job-1", expires, signature, new Date(NOW.getTime() + 86_400_000)), { ok: false, reason: "result_url_expired" });
  });

  test("a tampered job, expiry or signature, or another key, is invalid", () => {
    const { expires, signature } = parts(signer.urlFor("job-1", NOW));
    const invalid = { ok: false, reason: "result_url_invalid" };
    assert.deepEqual(signer.verify("job-2", expires, signature, NOW), invalid);
    assert.deepEqual(signer.verify("job-1", String(Number(expires) + 1), signature, NOW), invalid);
    assert.deepEqual(signer.verify("job-1", expires, `${signature!.slice(0, 63)}${signature!.endsWith("0") ? "1" : "0"}`, NOW), invalid);
    assert.deepEqual(signer.verify("job-1", expires, null, NOW), invalid);
    assert.deepEqual(signer.verify("job-1", "soon", signature, NOW), invalid);
    const other = createResultUrlSigner({ key: "o".repeat(40), publicUrl: "https://api.example.com", ttlSeconds: 86_400 });
    assert.deepEqual(other.verify("job-1", expires, signature, NOW), invalid);
  });

  test("a short key is a config error that never shows the key", () => {
    assert.throws(
      () => loadConfig(resultUrlConfigSpec, { CUTLINE_RESULT_URL_KEY: "short-key" }),
      (error: unknown) => error instanceof ConfigError && /CUTLINE_RESULT_URL_KEY=.*at least 32 characters/.test(error.message) && !error.message.includes("short-key"),
    );
  });

  test("single node keeps one generated key in its data directory; the mesh must be given one", () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cutline-result-url-"));
    try {
      const first = resultUrlKeyOf({ CUTLINE_RESULT_URL_KEY: undefined, CUTLINE_DATA_DIR: dataDir }, { required: false });
      assert.match(first, /^[0-9a-f]{64}$/);
      assert.equal(resultUrlKeyOf({ CUTLINE_RESULT_URL_KEY: undefined, CUTLINE_DATA_DIR: dataDir }, { required: false }), first, "the same key after a restart");
      assert.equal(readFileSync(join(dataDir, "result-url-key"), "utf8").trim(), first);
      assert.equal(statSync(join(dataDir, "result-url-key")).mode & 0o777, 0o600);
      assert.equal(resultUrlKeyOf({ CUTLINE_RESULT_URL_KEY: KEY, CUTLINE_DATA_DIR: dataDir }, { required: true }), KEY);
      assert.throws(() => resultUrlKeyOf({ CUTLINE_RESULT_URL_KEY: undefined, CUTLINE_DATA_DIR: dataDir }, { required: true }), /CUTLINE_RESULT_URL_KEY is not set/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

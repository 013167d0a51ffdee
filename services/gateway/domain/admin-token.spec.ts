import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../../common/config.loader.ts";
import { adminTokenOf, loadGatewayConfig } from "../gateway.config.ts";
import { ADMIN_TOKEN_LENGTH_MIN, checkAdminToken } from "./admin-token.ts";

const TOKEN = "0123456789abcdef0123456789abcdef-admin";

describe("admin token", () => {
  it("lets in exactly the bearer token, and says whether a token was missing or wrong", () => {
    assert.deepEqual(checkAdminToken(TOKEN, `Bearer ${TOKEN}`), { ok: true });
    assert.deepEqual(checkAdminToken(TOKEN, `bearer   ${TOKEN} `), { ok: true }, "the scheme is case-insensitive");
    assert.deepEqual(checkAdminToken(TOKEN, null), { ok: false, reason: "missing_admin_token" });
    assert.deepEqual(checkAdminToken(TOKEN, ""), { ok: false, reason: "missing_admin_token" });
    assert.deepEqual(checkAdminToken(TOKEN, TOKEN), { ok: false, reason: "missing_admin_token" }, "no Bearer scheme");
    assert.deepEqual(checkAdminToken(TOKEN, "Basic abc"), { ok: false, reason: "missing_admin_token" });
    assert.deepEqual(checkAdminToken(TOKEN, `Bearer ${TOKEN}x`), { ok: false, reason: "invalid_admin_token" });
    assert.deepEqual(checkAdminToken(TOKEN, `Bearer ${TOKEN.slice(0, -1)}`), { ok: false, reason: "invalid_admin_token" }, "a prefix is not the token");
    assert.deepEqual(checkAdminToken(TOKEN, "Bearer x"), { ok: false, reason: "invalid_admin_token" });
  });

  it("CUTLINE_ADMIN_TOKEN must be long enough, and is never echoed in the error", () => {
    assert.throws(
      () => loadGatewayConfig({ CUTLINE_ADMIN_TOKEN: "short-secret" }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes(`CUTLINE_ADMIN_TOKEN=<secret, 12 characters>: must be at least ${ADMIN_TOKEN_LENGTH_MIN} characters`) &&
        !error.message.includes("short-secret"),
    );
    const configured = adminTokenOf(loadGatewayConfig({ CUTLINE_ADMIN_TOKEN: TOKEN, CUTLINE_DATA_DIR: "/nonexistent" }));
    assert.deepEqual(configured, { token: TOKEN, file: undefined, created: false });
  });

  it("unset, one is generated at first start, kept in the data directory (0600) and reused", () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cutline-admin-token-"));
    try {
      const config = loadGatewayConfig({ CUTLINE_DATA_DIR: dataDir });
      const first = adminTokenOf(config);
      assert.equal(first.created, true);
      assert.equal(first.file, join(dataDir, "admin-token"));
      assert.match(first.token, /^[0-9a-f]{64}$/);
      assert.equal(readFileSync(join(dataDir, "admin-token"), "utf8"), `${first.token}\n`);
      assert.equal(statSync(join(dataDir, "admin-token")).mode & 0o777, 0o600);
      assert.deepEqual(adminTokenOf(config), { token: first.token, file: first.file, created: false }, "the same token after a restart");
      writeFileSync(join(dataDir, "admin-token"), "\n");
      assert.throws(() => adminTokenOf(config), /admin-token is empty/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

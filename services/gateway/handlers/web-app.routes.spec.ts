import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../common/logging.ts";
import type { HttpRoutes } from "../../common/server.ts";
import { webAppRoutes } from "./web-app.routes.ts";

/** A server answering with `routes`, and 404 "declined" where they decline. */
async function serve(routes: HttpRoutes): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    void routes(request, response).then((answered) => {
      if (!answered) response.writeHead(404, { "content-type": "text/plain" }).end("declined");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("web app routes", () => {
  const root = mkdtempSync(join(tmpdir(), "cutline-web-app-"));
  const built = join(root, "dist");
  const html = { accept: "text/html,application/xhtml+xml" };
  let app: { url: string; close(): Promise<void> };
  let unbuilt: { url: string; close(): Promise<void> };

  before(async () => {
    mkdirSync(join(built, "assets"), { recursive: true });
    writeFileSync(join(built, "index.html"), '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>');
    writeFileSync(join(built, "assets", "index-abc123.js"), "console.log('app')");
    writeFileSync(join(built, "favicon.svg"), "<svg/>");
    writeFileSync(join(root, "secret.txt"), "outside the build");
    const log = createLogger("test", "silent");
    app = await serve(webAppRoutes(log, { directory: built }));
    unbuilt = await serve(webAppRoutes(log, { directory: join(root, "missing") }));
  });

  after(async () => {
    await app.close();
    await unbuilt.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("serves index.html at / uncached, under a Content-Security-Policy that allows only this origin's scripts", async () => {
    const response = await fetch(`${app.url}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
    assert.equal(response.headers.get("cache-control"), "no-cache");
    const policy = response.headers.get("content-security-policy") ?? "";
    assert.match(policy, /script-src 'self'(;|$)/);
    assert.match(policy, /connect-src 'self'/);
    assert.match(policy, /img-src 'self' blob:/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.match(await response.text(), /index-abc123\.js/);
  });

  it("serves hashed assets as immutable for a year, other files for an hour, HEAD without a body", async () => {
    const script = await fetch(`${app.url}/assets/index-abc123.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.equal(script.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.equal(await script.text(), "console.log('app')");
    const icon = await fetch(`${app.url}/favicon.svg`);
    assert.deepEqual([icon.status, icon.headers.get("content-type"), icon.headers.get("cache-control")], [200, "image/svg+xml", "public, max-age=3600"]);
    const head = await fetch(`${app.url}/assets/index-abc123.js`, { method: "HEAD" });
    assert.deepEqual([head.status, head.headers.get("content-length"), await head.text()], [200, "18", ""]);
  });

  it("answers page paths with the app for browsers only, and never API paths, missing assets, other methods or files outside the build", async () => {
    const page = await fetch(`${app.url}/keys`, { headers: html });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /index-abc123/);
    const declined = async (path: string, init: RequestInit = { headers: html }) => {
      const response = await fetch(`${app.url}${path}`, init);
      assert.equal(await response.text(), "declined", path);
    };
    await declined("/keys", {});
    await declined("/v1/nothing-here");
    await declined("/v1.0/account");
    await declined("/v2/edit");
    await declined("/admin/v1/accounts");
    await declined("/docs");
    await declined("/openapi.json");
    await declined("/cutline.gateway.v1.VideoService/SubmitVideo");
    await declined("/assets/index-gone.js");
    await declined("/", { method: "POST", headers: html, body: "x" });
    for (const path of ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"]) {
      const response = await fetch(`${app.url}${path}`, { headers: html });
      assert.doesNotMatch(await response.text(), /outside the build/, path);
    }
  });

  it("answers nothing while the app is not built", async () => {
    const response = await fetch(`${unbuilt.url}/`, { headers: html });
    assert.equal(await response.text(), "declined");
  });
});

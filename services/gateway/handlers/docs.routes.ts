// GET /openapi.json (the document) and GET /docs (Swagger UI, served from the swagger-ui-dist
// package's own files: no CDN, nothing fetched from elsewhere).
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { OPENAPI_DOCUMENT } from "../openapi.ts";
import type { RestRoute } from "./route-table.ts";

const SWAGGER_UI_DIRECTORY = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

/** The package's files the page loads, with their types; nothing else under /docs/ is served. */
const ASSETS: Readonly<Record<string, string>> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
  "favicon-16x16.png": "image/png",
};

// Swagger UI sets inline style attributes (so 'unsafe-inline' for styles only) and shows images
// from data: URLs; scripts come only from this origin, and the page fetches only /openapi.json.
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Cutline API reference</title>
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/swagger-ui-standalone-preset.js"></script>
    <script src="/docs/initializer.js"></script>
  </body>
</html>
`;

// A file rather than an inline script, so the policy needs no 'unsafe-inline' for scripts.
const INITIALIZER = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
});
`;

const DOCUMENT_JSON = JSON.stringify(OPENAPI_DOCUMENT);

const PAGE_HEADERS = { "content-security-policy": CONTENT_SECURITY_POLICY, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer" };

/** The reference routes; they need no API key. */
export function docsRoutes(): RestRoute[] {
  const assets = new Map<string, Promise<Buffer>>();
  return [
    {
      method: "GET",
      path: "/openapi.json",
      async handle(_request, response) {
        response.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(DOCUMENT_JSON)), "cache-control": "no-cache", "access-control-allow-origin": "*" });
        response.end(DOCUMENT_JSON);
      },
    },
    {
      method: "GET",
      path: "/docs",
      async handle(_request, response) {
        response.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": String(Buffer.byteLength(PAGE)), "cache-control": "no-cache", ...PAGE_HEADERS });
        response.end(PAGE);
      },
    },
    {
      method: "GET",
      path: "/docs/{asset}",
      async handle(_request, response, { asset }) {
        if (asset === "initializer.js") {
          response.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "content-length": String(Buffer.byteLength(INITIALIZER)), ...PAGE_HEADERS });
          response.end(INITIALIZER);
          return;
        }
        const type = asset === undefined ? undefined : ASSETS[asset];
        if (asset === undefined || type === undefined) throw reasonError(Code.NotFound, "not_found", `no file /docs/${asset ?? ""}; the reference is at /docs`);
        // Read once, kept: a few MiB at most, and the package does not change under a running process.
        let bytes = assets.get(asset);
        if (!bytes) {
          bytes = readFile(join(SWAGGER_UI_DIRECTORY, asset));
          assets.set(asset, bytes);
        }
        const body = await bytes;
        response.writeHead(200, { "content-type": type, "content-length": String(body.byteLength), "cache-control": "public, max-age=86400", ...PAGE_HEADERS });
        response.end(body);
      },
    },
  ];
}

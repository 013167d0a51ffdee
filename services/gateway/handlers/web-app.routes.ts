// The web app (web/, built by `npm run build:web` into web/dist) served at /. Not part of the REST
// API, so not in the route table or the OpenAPI document: it answers only GET and HEAD, only paths
// outside the API's (REST, vendor, admin, docs, RPC), and only after every API route declined.
//
// Caching: Vite names every file under assets/ by a hash of its content, so those are cached for a
// year and never revalidated; index.html names the current ones and is revalidated on every load
// (no-cache), so a new build reaches browsers on their next page load.
import { readFile, stat } from "node:fs/promises";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../common/logging.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";

/**
 * Where `npm run build:web` writes the app: web/dist at the repository's root (the images copy it to
 * the same place beside services/). A folder of static files read at run time, not a module: no
 * code of web/ is imported here, so the service boundaries (test/boundaries.spec.ts) are untouched.
 */
export const WEB_APP_DIRECTORY_DEFAULT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "web", "dist");

/** Paths the app never answers: the APIs' own, which keep their JSON 404s. */
const API_PATH_PREFIXES = ["/v1/", "/v1.0/", "/v2/", "/admin/", "/docs", "/openapi.json", "/metrics", "/cutline.", "/grpc."];

/** Hashed assets: a year, never revalidated (RFC 8246 immutable). */
const IMMUTABLE_CACHE = "public, max-age=31536000, immutable";
/** Unhashed files beside index.html (favicon.svg): an hour. */
const STATIC_CACHE = "public, max-age=3600";
/** Largest file served, in bytes: the bundle is well under 1 MiB; anything larger is not the app's. */
const WEB_APP_FILE_BYTES_MAX = 8 * 1024 * 1024;

// Scripts and styles from this origin only (Vite emits no inline script); images and videos the
// app makes from the person's own files (blob:), and data: for small inlined assets; RPCs to this
// origin only.
export const WEB_APP_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": WEB_APP_CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

export interface WebAppOptions {
  /** The built app (index.html and assets/). @default WEB_APP_DIRECTORY_DEFAULT */
  directory?: string;
}

function isApiPath(path: string): boolean {
  return path === "/v1" || API_PATH_PREFIXES.some((prefix) => path.startsWith(prefix));
}

/** The file under `directory` a URL path names, or undefined when it would leave the directory. */
function fileOf(directory: string, path: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  if (decoded.includes("\0")) return undefined;
  const file = normalize(join(directory, decoded));
  return file.startsWith(directory + sep) ? file : undefined;
}

async function readIfFile(file: string): Promise<Buffer | undefined> {
  try {
    const info = await stat(file);
    if (!info.isFile() || info.size > WEB_APP_FILE_BYTES_MAX) return undefined;
    return await readFile(file);
  } catch {
    return undefined;
  }
}

function send(request: HttpRequest, response: HttpResponse, body: Buffer, headers: Record<string, string>): void {
  response.writeHead(200, { ...headers, "content-length": String(body.byteLength), ...SECURITY_HEADERS });
  if (request.method === "HEAD") response.end();
  else response.end(body);
}

/**
 * GET and HEAD of the app's files, and of index.html for any other page path a browser asks for
 * (Accept: text/html), so /keys or /balance load the app on a reload. Hashed assets are read once
 * and kept (they never change under their names); index.html is read on each request, so a
 * rebuild is served without a restart. With no build in `directory`, nothing is answered here.
 */
export function webAppRoutes(log: Logger, options: WebAppOptions = {}): HttpRoutes {
  const directory = normalize(options.directory ?? WEB_APP_DIRECTORY_DEFAULT);
  const assets = new Map<string, Buffer>();
  let missingLogged = false;
  return async (request, response) => {
    if (request.method !== "GET" && request.method !== "HEAD") return false;
    const path = (request.url ?? "/").split("?")[0]!;
    if (isApiPath(path)) return false;
    const index = await readIfFile(join(directory, "index.html"));
    if (!index) {
      if (!missingLogged) log.warn({ directory }, "the web app is not built (no index.html): run `npm run build:web` to serve it at /");
      missingLogged = true;
      return false;
    }
    const file = path === "/" ? undefined : fileOf(directory, path);
    if (file !== undefined && file !== join(directory, "index.html")) {
      const hashed = file.startsWith(join(directory, "assets") + sep);
      const body = (hashed ? assets.get(file) : undefined) ?? (await readIfFile(file));
      if (body) {
        if (hashed) assets.set(file, body);
        send(request, response, body, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": hashed ? IMMUTABLE_CACHE : STATIC_CACHE });
        return true;
      }
      // A missing asset is a 404, never the page: a script tag given HTML fails confusingly.
      if (hashed) return false;
    }
    const accept = request.headers.accept ?? "";
    if (path !== "/" && !accept.includes("text/html")) return false;
    send(request, response, index, { "content-type": TYPES[".html"]!, "cache-control": "no-cache" });
    return true;
  };
}

// fetchOutbound against real HTTP servers on this machine: what it refuses, where, and with which reason.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createOutboundFetcher, forbiddenRangeOf, OutboundError, parseOutboundUrl, type OutboundFetcher } from "./outbound.ts";

type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void;

async function listen(handler: Handler, host = "127.0.0.1"): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => handler(request, response, body));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://${host.includes(":") ? `[${host}]` : host}:${port}` };
}

function rejectsWith(reason: string, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof OutboundError, `expected an OutboundError, got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

describe("outbound fetch guard", () => {
  let origin: { server: Server; url: string };
  const seen: { method: string; url: string; body: string; headers: IncomingMessage["headers"] }[] = [];
  let loopbackAllowed: OutboundFetcher;
  let publicOnly: OutboundFetcher;

  before(async () => {
    origin = await listen((request, response, body) => {
      seen.push({ method: request.method ?? "", url: request.url ?? "", body, headers: request.headers });
      const path = new URL(request.url ?? "/", "http://x").pathname;
      if (path === "/ok") return void response.end("hello");
      if (path === "/echo") return void response.end(`${request.method} ${body}`);
      if (path === "/to-private") return void response.writeHead(302, { location: "http://10.1.2.3/inside" }).end();
      if (path === "/to-mapped") return void response.writeHead(307, { location: "http://[::ffff:192.168.0.1]/inside" }).end();
      if (path === "/to-file") return void response.writeHead(302, { location: "file:///etc/passwd" }).end();
      if (path === "/to-ok") return void response.writeHead(307, { location: "/echo" }).end();
      if (path === "/see-other") return void response.writeHead(303, { location: "/echo" }).end();
      if (path === "/loop") return void response.writeHead(302, { location: "/loop" }).end();
      if (path === "/large") return void response.end(Buffer.alloc(64 * 1024, 1));
      if (path === "/large-chunked") {
        // No content-length: the limit has to be enforced on the stream.
        response.writeHead(200, { "content-type": "application/octet-stream" });
        const timer = setInterval(() => response.write(Buffer.alloc(16 * 1024, 2)), 5);
        response.on("close", () => clearInterval(timer));
        return;
      }
      if (path === "/slow") return void setTimeout(() => response.end("late"), 2000).unref();
      if (path === "/status-500") return void response.writeHead(500).end("nope");
      response.writeHead(404).end();
    });
    loopbackAllowed = createOutboundFetcher({ allowLoopback: true, timeoutMs: 5000, bytesMax: 32 * 1024 });
    publicOnly = createOutboundFetcher({ allowLoopback: false, timeoutMs: 5000, bytesMax: 32 * 1024 });
  });

  after(async () => {
    await Promise.all([loopbackAllowed.close(), publicOnly.close()]);
    origin.server.closeAllConnections();
    await new Promise((resolve) => origin.server.close(resolve));
  });

  it("classifies addresses: only public unicast passes, loopback only where allowed", () => {
    const strict = { allowLoopback: false };
    const loose = { allowLoopback: true };
    for (const [address, range] of [
      ["10.0.0.1", "private"],
      ["172.16.5.4", "private"],
      ["192.168.1.1", "private"],
      ["127.0.0.1", "loopback"],
      ["169.254.169.254", "linkLocal"],
      ["100.64.0.1", "carrierGradeNat"],
      ["0.0.0.0", "unspecified"],
      ["224.0.0.1", "multicast"],
      ["255.255.255.255", "broadcast"],
      ["::1", "loopback"],
      ["::", "unspecified"],
      ["fe80::1", "linkLocal"],
      ["fd00::1", "uniqueLocal"],
      ["ff02::1", "multicast"],
      ["::ffff:10.0.0.1", "private"],
      ["::ffff:127.0.0.1", "loopback"],
    ] as const) {
      assert.equal(forbiddenRangeOf(address, strict), range, address);
    }
    for (const address of ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"]) assert.equal(forbiddenRangeOf(address, strict), undefined, address);
    assert.equal(forbiddenRangeOf("127.0.0.2", loose), undefined);
    assert.equal(forbiddenRangeOf("::1", loose), undefined);
    assert.equal(forbiddenRangeOf("10.0.0.1", loose), "private", "loopback allowance lets nothing else in");
    assert.equal(forbiddenRangeOf("169.254.169.254", loose), "linkLocal");
  });

  it("accepts only http and https URLs of bounded length, without credentials", () => {
    assert.equal(parseOutboundUrl("https://example.com/a").host, "example.com");
    assert.throws(() => parseOutboundUrl("ftp://example.com/"), rejectsWith("outbound_invalid_url", /http or https, not ftp/));
    assert.throws(() => parseOutboundUrl("not a url"), rejectsWith("outbound_invalid_url", /not an absolute URL/));
    assert.throws(() => parseOutboundUrl(`https://example.com/${"a".repeat(2100)}`), rejectsWith("outbound_invalid_url", /limit is 2048/));
    assert.throws(() => parseOutboundUrl("https://user:pw@example.com/"), rejectsWith("outbound_invalid_url", /user name or password/));
  });

  it("loopback is refused unless allowed, whether the URL names an address or a name that resolves to one", async () => {
    await assert.rejects(publicOnly.fetchOutbound(`${origin.url}/ok`), rejectsWith("outbound_forbidden_address", /loopback.*CUTLINE_OUTBOUND_ALLOW_LOOPBACK/));
    const port = new URL(origin.url).port;
    // A name is checked where the socket connects, through the agent's lookup.
    await assert.rejects(publicOnly.fetchOutbound(`http://localhost:${port}/ok`), rejectsWith("outbound_forbidden_address", /localhost resolves to/));
    const before = seen.length;
    await assert.rejects(publicOnly.fetchOutbound(`http://[::ffff:127.0.0.1]:${port}/ok`), rejectsWith("outbound_forbidden_address"));
    assert.equal(seen.length, before, "no request reached the server");
    const response = await loopbackAllowed.fetchOutbound(`${origin.url}/ok`);
    assert.deepEqual([response.status, Buffer.from(response.body).toString()], [200, "hello"]);
    const byName = await loopbackAllowed.fetchOutbound(`http://localhost:${port}/ok`);
    assert.equal(byName.status, 200);
  });

  it("each redirect hop is checked again: a redirect to a private address or another scheme is refused", async () => {
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/to-private`), rejectsWith("outbound_forbidden_address", /10\.1\.2\.3, a private address/));
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/to-mapped`), rejectsWith("outbound_forbidden_address", /private/));
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/to-file`), rejectsWith("outbound_invalid_url", /redirect's Location must be http or https/));
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/loop`), rejectsWith("outbound_too_many_redirects", /more than 5 times/));
  });

  it("follows allowed redirects: 307 keeps the method and body, 303 turns into GET", async () => {
    const kept = await loopbackAllowed.fetchOutbound(`${origin.url}/to-ok`, { method: "POST", body: "payload", headers: { "content-type": "text/plain" } });
    assert.deepEqual([kept.status, Buffer.from(kept.body).toString(), kept.redirects], [200, "POST payload", 1]);
    assert.match(kept.url, /\/echo$/);
    const seeOther = await loopbackAllowed.fetchOutbound(`${origin.url}/see-other`, { method: "POST", body: "payload" });
    assert.equal(Buffer.from(seeOther.body).toString(), "GET ");
  });

  it("a body past bytesMax is aborted, declared or streamed; a discarded body is not read", async () => {
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/large`), rejectsWith("outbound_too_large", /65536 bytes; the limit is 32768 bytes \(OUTBOUND_BYTES_MAX\)/));
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/large-chunked`, { bytesMax: 40_000 }), rejectsWith("outbound_too_large", /more than 40000/));
    // A caller whose limit is another one names it (an image fetch: the plan's or UPLOAD_BYTES_MAX).
    await assert.rejects(
      loopbackAllowed.fetchOutbound(`${origin.url}/large-chunked`, { bytesMax: 20_000, bytesLimitName: "UPLOAD_BYTES_MAX" }),
      rejectsWith("outbound_too_large", /more than 20000 bytes; the limit is 20000 bytes \(UPLOAD_BYTES_MAX\)$/),
    );
    const discarded = await loopbackAllowed.fetchOutbound(`${origin.url}/large-chunked`, { responseBody: "discard" });
    assert.deepEqual([discarded.status, discarded.body.byteLength], [200, 0]);
  });

  it("a slow server is cut off at timeoutMs; a caller's own abort is not a timeout", async () => {
    const started = Date.now();
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/slow`, { timeoutMs: 200 }), rejectsWith("outbound_timeout", /within 200 ms \(OUTBOUND_TIMEOUT_MS\)/));
    assert.ok(Date.now() - started < 1500, "gave up at the limit");
    await assert.rejects(loopbackAllowed.fetchOutbound(`${origin.url}/slow`, { signal: AbortSignal.timeout(100) }), rejectsWith("outbound_failed"));
  });

  it("a non-2xx answer is returned, and a closed port is outbound_failed", async () => {
    const response = await loopbackAllowed.fetchOutbound(`${origin.url}/status-500`);
    assert.equal(response.status, 500);
    const closed = await listen(() => {});
    const url = closed.url;
    await new Promise((resolve) => closed.server.close(resolve));
    await assert.rejects(loopbackAllowed.fetchOutbound(`${url}/`), rejectsWith("outbound_failed", /ECONNREFUSED/));
  });
});

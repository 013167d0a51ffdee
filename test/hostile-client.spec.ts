// A hostile client against a real started server (test/hostile-client.server.ts, its own
// process): connections reset at every stage, slowloris headers and bodies, oversized headers,
// malformed HTTP/1.1, garbage after the h2c preface, gRPC frames whose length lies. After each
// burst the process is alive, health answers SERVING over Connect and gRPC, nothing was logged
// as a server fault, and every answer was a 4xx (or a gRPC error status) or a closed connection.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";

const root = join(import.meta.dirname, "..");
const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const BURST = 100;
const HOSTILE_LIMITS = {
  headersTimeoutMs: 1_000,
  requestTimeoutMs: 2_500,
  keepAliveTimeoutMs: 1_000,
  http2IdleTimeoutMs: 1_500,
  headerBytesMax: 8_192,
  readBytesMax: 64 * 1024,
} as const;

let child: ChildProcess;
let url: URL;
const logLines: string[] = [];

before(async () => {
  child = spawn(process.execPath, ["--import", "tsx", join(root, "test", "hostile-client.server.ts"), JSON.stringify(HOSTILE_LIMITS)], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  child.stderr!.on("data", (chunk: Buffer) => logLines.push(chunk.toString()));
  url = await new Promise<URL>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`server exited with ${code}: ${logLines.join("")}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.startsWith('{"url"')) resolve(new URL(JSON.parse(line).url));
      else logLines.push(line);
    });
  });
});

after(async () => {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
});

interface Exchange {
  /** Every byte the server sent. */
  received: string;
  /** The server closed (or reset) the connection before the client gave up waiting. */
  closedByServer: boolean;
  elapsedMs: number;
}

/**
 * One raw TCP connection: writes `chunks` (`gapMs` apart), then either resets the connection
 * itself (RST, not FIN) or waits up to `waitMs` for the server to answer and close.
 */
function exchange(chunks: (string | Buffer)[], options: { gapMs?: number; reset?: boolean; waitMs?: number } = {}): Promise<Exchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let received = "";
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ received, closedByServer, elapsedMs: Date.now() - started });
    };
    const giveUp = setTimeout(() => finish(false), options.waitMs ?? 3_000);
    socket.on("data", (data) => (received += data.toString("latin1")));
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
    socket.once("connect", async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        if (options.gapMs) await new Promise((wait) => setTimeout(wait, options.gapMs));
      }
      if (options.reset) {
        socket.resetAndDestroy();
        finish(true);
      }
    });
  });
}

/** HTTP/1.1 status codes in what the server sent; a pipelined or repeated answer shows as several. */
function statusesOf(received: string): number[] {
  return [...received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => Number(match[1]));
}

/** A 4xx, or no answer at all on a connection the server closed; never a 5xx. */
function assertRefused(result: Exchange, what: string): void {
  const statuses = statusesOf(result.received);
  for (const status of statuses) assert.ok(status >= 400 && status < 500, `${what}: answered ${status}: ${result.received.slice(0, 200)}`);
  if (statuses.length === 0) assert.ok(result.closedByServer, `${what}: neither answered nor closed (${JSON.stringify(result.received.slice(0, 100))})`);
}

async function inBatches<T>(count: number, run: (index: number) => Promise<T>, batch = 25): Promise<T[]> {
  const results: T[] = [];
  for (let start = 0; start < count; start += batch) {
    results.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, offset) => run(start + offset)))));
  }
  return results;
}

/** The raw h2 client's answer to one stream. */
interface H2Answer {
  status?: number;
  grpcStatus?: number;
  rstCode?: number;
}

function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<H2Answer> {
  return new Promise((resolve) => {
    const stream = session.request(headers);
    const answer: H2Answer = {};
    stream.on("response", (received) => {
      answer.status = Number(received[":status"]);
      if (received["grpc-status"] !== undefined) answer.grpcStatus = Number(received["grpc-status"]);
    });
    stream.on("trailers", (trailers) => {
      if (trailers["grpc-status"] !== undefined) answer.grpcStatus = Number(trailers["grpc-status"]);
    });
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("close", () => resolve({ ...answer, rstCode: stream.rstCode }));
    stream.end(body);
  });
}

function grpcFrame(claimedLength: number, payload: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(claimedLength >>> 0, 1);
  return Buffer.concat([prefix, payload]);
}

/** The process is up, health is SERVING over Connect JSON (HTTP/1.1) and gRPC (h2c), and nothing was logged as a fault. */
async function assertAlive(after: string): Promise<void> {
  assert.equal(child.exitCode, null, `${after}: the server process exited: ${logLines.join("\n")}`);
  const check = await fetch(new URL("/grpc.health.v1.Health/Check", url), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.deepEqual(await check.json(), { status: "SERVING" }, `${after}: Connect health`);
  const session = http2.connect(url);
  session.on("error", () => {});
  const answer = await h2Request(session, { ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" }, grpcFrame(0, Buffer.alloc(0)));
  session.close();
  assert.deepEqual([answer.status, answer.grpcStatus], [200, 0], `${after}: gRPC health`);
  const faults = logLines.filter((line) => /"level":(50|60)/.test(line) || /Error|uncaught|unhandled/i.test(line));
  assert.deepEqual(faults, [], `${after}: server faults logged`);
}

test("connections reset before their first byte (×100) do not crash the server", async () => {
  await inBatches(BURST, () => exchange([], { reset: true }));
  await assertAlive("resets before the first byte");
});

test("connections reset mid-headers (×100, HTTP/1.1 and h2c) do not crash the server", async () => {
  await inBatches(BURST, (index) =>
    exchange(index % 2 === 0 ? ["POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Len"] : [H2_PREFACE, Buffer.from([0, 0, 6, 4, 0])], { reset: true, gapMs: 5 }),
  );
  await assertAlive("resets mid-headers");
});

test("connections reset mid-body (×100, REST upload and gRPC over h2c) do not crash the server", async () => {
  await inBatches(BURST, async (index) => {
    if (index % 2 === 0) {
      return exchange(["POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n", "x".repeat(1000)], { reset: true, gapMs: 5 });
    }
    // A real h2 client over a socket this test owns, so that it can reset the TCP connection mid-body.
    const socket = net.connect(Number(url.port), url.hostname);
    socket.on("error", () => {});
    const session = http2.connect(url, { createConnection: () => socket });
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": "/cutline.gateway.v1.JobService/GetJob", "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => {});
    stream.write(grpcFrame(50_000, Buffer.alloc(1_000)));
    await new Promise((resolve) => setTimeout(resolve, 10));
    socket.resetAndDestroy();
    session.destroy();
    return undefined;
  });
  await assertAlive("resets mid-body");
});

test("slow clients are cut: silent connections, slowloris headers (408), slow bodies (408 / HTTP/2 reset), idle HTTP/2", async () => {
  const slack = 1_500;
  const silent = Array.from({ length: 10 }, () => exchange([], { waitMs: HOSTILE_LIMITS.headersTimeoutMs + slack }));
  // One header line every 150 ms: each byte resets no timer, the headers never end.
  const headerLines = ["GET /v1/echo HTTP/1.1\r\nHost: x\r\n", ...Array.from({ length: 40 }, (_, index) => `X-Slow-${index}: y\r\n`)];
  const slowloris = Array.from({ length: 10 }, () => exchange(headerLines, { gapMs: 150, waitMs: HOSTILE_LIMITS.headersTimeoutMs + slack }));
  const bodyBytes = ["POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", ...Array.from({ length: 40 }, () => "x")];
  const slowBodies = Array.from({ length: 5 }, () => exchange(bodyBytes, { gapMs: 150, waitMs: HOSTILE_LIMITS.requestTimeoutMs + slack }));
  // HTTP/2's slow body: a gRPC request that sends part of its message and then nothing.
  const stalledStream = new Promise<{ rstCode?: number; elapsedMs: number }>((resolve) => {
    const started = Date.now();
    const session = http2.connect(url);
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": "/cutline.gateway.v1.JobService/GetJob", "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => {});
    stream.on("data", () => {});
    stream.write(grpcFrame(1_000, Buffer.alloc(10)));
    stream.once("close", () => {
      resolve({ rstCode: stream.rstCode, elapsedMs: Date.now() - started });
      session.destroy();
    });
  });
  const idleSession = new Promise<number>((resolve) => {
    const started = Date.now();
    const session = http2.connect(url);
    session.on("error", () => {});
    session.once("close", () => resolve(Date.now() - started));
  });

  for (const result of await Promise.all(silent)) {
    assert.ok(result.closedByServer, `a connection that never sent a byte was still open after ${result.elapsedMs} ms`);
    assert.equal(result.received, "");
  }
  for (const result of await Promise.all(slowloris)) {
    assert.ok(result.closedByServer, `slowloris headers still open after ${result.elapsedMs} ms`);
    assertRefused(result, "slowloris headers");
    assert.ok(result.elapsedMs < HOSTILE_LIMITS.headersTimeoutMs + slack, `slowloris closed after ${result.elapsedMs} ms`);
  }
  for (const result of await Promise.all(slowBodies)) {
    assert.ok(result.closedByServer, `slow body still open after ${result.elapsedMs} ms`);
    assert.deepEqual(statusesOf(result.received), [408], `slow body answered ${JSON.stringify(result.received.slice(0, 100))}`);
  }
  const stalled = await stalledStream;
  assert.equal(stalled.rstCode, http2.constants.NGHTTP2_CANCEL, "a stalled HTTP/2 request is reset");
  assert.ok(stalled.elapsedMs < HOSTILE_LIMITS.requestTimeoutMs + slack, `stalled HTTP/2 request reset after ${stalled.elapsedMs} ms`);
  const idleMs = await idleSession;
  assert.ok(idleMs < HOSTILE_LIMITS.http2IdleTimeoutMs + slack, `idle HTTP/2 session closed after ${idleMs} ms`);
  await assertAlive("slow clients");
});

test("oversized headers are answered 431 over HTTP/1.1 and reset over HTTP/2", async () => {
  const big = "a".repeat(HOSTILE_LIMITS.headerBytesMax + 1_000);
  const results = await inBatches(10, () => exchange([`GET /v1/echo HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\n\r\n`]));
  for (const result of results) assert.deepEqual(statusesOf(result.received), [431]);

  const session = http2.connect(url);
  session.on("error", () => {});
  const answers = await Promise.all(
    Array.from({ length: 10 }, () => h2Request(session, { ":method": "POST", ":path": "/cutline.gateway.v1.JobService/GetJob", "content-type": "application/grpc", "x-big": big })),
  );
  session.destroy();
  for (const answer of answers) assert.ok(answer.status === undefined || answer.status < 500, `h2 oversized headers answered ${JSON.stringify(answer)}`);
  await assertAlive("oversized headers");
});

test("malformed HTTP/1.1 is answered 400 (or closed), never 5xx", async () => {
  const malformed = [
    "\x00\x01\x02\x03garbage\r\n\r\n",
    "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\n", // no Host
    "GET /v1/echo HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    "P\r\n\r\n",
    "\r\n\r\n\r\n\r\n",
  ];
  const results = await Promise.all(malformed.map((request) => exchange([request], { waitMs: HOSTILE_LIMITS.headersTimeoutMs + 1_500 })));
  results.forEach((result, index) => {
    assertRefused(result, `malformed request ${JSON.stringify(malformed[index])}`);
    assert.ok(result.closedByServer, `malformed request ${JSON.stringify(malformed[index])}: connection left open`);
  });
  await assertAlive("malformed HTTP/1.1");
});

test("garbage after the h2c preface, and a PRI that is not the preface, close the connection", async () => {
  const results = await inBatches(40, (index) => {
    const garbage = Buffer.from(Array.from({ length: 64 + index }, (_, offset) => (offset * 131 + index * 17) % 256));
    return exchange(index % 4 === 3 ? [`PRI garbage ${index}\r\n\r\n`] : [H2_PREFACE, garbage], { waitMs: HOSTILE_LIMITS.http2IdleTimeoutMs + 1_500 });
  });
  for (const result of results) {
    assert.ok(result.closedByServer, `garbage after the preface: connection left open after ${result.elapsedMs} ms`);
    assert.deepEqual(statusesOf(result.received), [], "no HTTP/1.1 answer on an h2 connection");
  }
  await assertAlive("garbage after the h2c preface");
});

test("gRPC frames whose length prefix lies get an error status, never a crash or a 5xx", async () => {
  const session = http2.connect(url);
  session.on("error", () => {});
  const call = (body: Buffer) =>
    h2Request(session, { ":method": "POST", ":path": "/cutline.gateway.v1.JobService/GetJob", "content-type": "application/grpc", te: "trailers" }, body);
  const cases: [string, Buffer][] = [
    ["claims 1000 bytes, sends 3", grpcFrame(1_000, Buffer.from([10, 1, 120]))],
    ["claims 4 GiB", grpcFrame(0xffff_ffff, Buffer.alloc(16))],
    ["claims more than readBytesMax and sends it", grpcFrame(HOSTILE_LIMITS.readBytesMax + 1, Buffer.alloc(HOSTILE_LIMITS.readBytesMax + 1))],
    ["claims 2 bytes, sends 10", grpcFrame(2, Buffer.from([10, 8, ...Buffer.from("abcdefgh")]))],
    ["a prefix cut after 3 bytes", Buffer.from([0, 0, 0])],
    ["a second frame after the unary request", Buffer.concat([grpcFrame(3, Buffer.from([10, 1, 120])), grpcFrame(3, Buffer.from([10, 1, 120]))])],
  ];
  for (const [name, body] of cases) {
    const answer = await call(body);
    assert.ok(answer.status === undefined || answer.status < 500, `${name}: HTTP ${answer.status}`);
    assert.ok(answer.grpcStatus !== undefined ? answer.grpcStatus > 0 : answer.rstCode !== undefined, `${name}: ${JSON.stringify(answer)}`);
  }
  // The honest request on the same connection still works.
  assert.deepEqual((await call(grpcFrame(3, Buffer.from([10, 1, 120])))).grpcStatus, 0);
  session.close();
  await assertAlive("lying gRPC frames");
});

test("request messages that are not protobuf get INVALID_ARGUMENT in every protocol, never a server fault", async () => {
  // Each fails protobuf-es's binary parse of GetJobRequest / WatchJobRequest in a different way.
  const garbage: [string, Buffer][] = [
    ["a length past the end", Buffer.from([10, 16, 65])],
    ["wire type 7", Buffer.from([7])],
    ["a varint of 11 bytes", Buffer.from([8, ...Array(10).fill(0xff), 1])],
    ["a string that is not UTF-8", Buffer.from([10, 2, 0xc3, 0x28])],
  ];
  const rpc = (method: string) => new URL(`/cutline.gateway.v1.JobService/${method}`, url);
  const session = http2.connect(url);
  session.on("error", () => {});
  for (const [name, payload] of garbage) {
    const unary = await fetch(rpc("GetJob"), { method: "POST", headers: { "content-type": "application/proto" }, body: payload });
    assert.equal(unary.status, 400, `Connect unary, ${name}`);
    const error = (await unary.json()) as { code: string; message: string };
    assert.equal(error.code, "invalid_argument", `Connect unary, ${name}`);
    assert.match(error.message, /^the request is not a valid cutline\.gateway\.v1\.GetJobRequest in protobuf binary: /);
    assert.equal(unary.headers.get("cutline-reason"), "malformed_message");

    for (const method of ["GetJob", "WatchJob"]) {
      const answer = await h2Request(session, { ":method": "POST", ":path": rpc(method).pathname, "content-type": "application/grpc", te: "trailers" }, grpcFrame(payload.length, payload));
      assert.deepEqual([answer.status, answer.grpcStatus], [200, 3], `gRPC ${method}, ${name}`);

      const web = await fetch(rpc(method), { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: grpcFrame(payload.length, payload) });
      const body = Buffer.from(await web.arrayBuffer());
      const trailer = body.subarray(body.lastIndexOf(0x80) + 5).toString();
      assert.equal(web.status, 200, `gRPC-Web ${method}, ${name}`);
      assert.match(trailer, /grpc-status: ?3\r\n/i, `gRPC-Web ${method}, ${name}: ${trailer}`);
    }

    const stream = await fetch(rpc("WatchJob"), { method: "POST", headers: { "content-type": "application/connect+proto" }, body: grpcFrame(payload.length, payload) });
    const end = JSON.parse(Buffer.from(await stream.arrayBuffer()).subarray(5).toString()) as { error?: { code: string } };
    assert.equal(end.error?.code, "invalid_argument", `Connect server stream, ${name}`);
  }
  session.close();
  // A message that parses is still answered.
  const honest = await fetch(rpc("GetJob"), { method: "POST", headers: { "content-type": "application/proto" }, body: Buffer.from([10, 1, 120]) });
  assert.equal(honest.status, 200);
  await assertAlive("request messages that are not protobuf");
});

// The in-process event bus's log beyond the contract: what a crash, a failed write or a sweep
// during appends leaves on disk, and what a restart makes of it.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { pino } from "pino";
import { eventually, sleep } from "../ports/contract-support.ts";
import type { BusEvent } from "../ports/event-bus.ts";
import { InProcessEventBus } from "./event-bus.in-process.ts";

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** The log's lines as written: each must parse, or the load drops it. */
async function logLines(dataDir: string): Promise<{ seq: number; payload: string }[]> {
  const file = await readFile(join(dataDir, "events", "events.jsonl"), "utf8");
  assert.ok(file === "" || file.endsWith("\n"), "the log ends with a whole line");
  return file
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const parsed = JSON.parse(line) as { seq: number; data: string };
      return { seq: parsed.seq, payload: Buffer.from(parsed.data, "base64").toString() };
    });
}

function reader(into: string[]): (event: BusEvent) => Promise<void> {
  return async (event) => {
    into.push(text(event.data).slice(0, 10));
  };
}

// A real write error: the child may write files of at most 4096 bytes (RLIMIT_FSIZE), so the
// second event's line is cut short on disk and its append fails with EFBIG.
const childScript = `
import { pino } from "pino";
import { InProcessEventBus } from ${JSON.stringify(new URL("./event-bus.in-process.ts", import.meta.url).href)};
const bytes = (text) => new TextEncoder().encode(text);
const bus = new InProcessEventBus({ dataDir: process.env.DATA_DIR, log: pino({ level: "silent" }) });
const received = { reader: [], late: [] };
const into = (list) => async (event) => { list.push(new TextDecoder().decode(event.data).slice(0, 10)); };
bus.subscribe(into(received.reader), { durableName: "reader", subjectFilter: "job.*" });
const outcome = (publish) => publish.then(() => "ok", (error) => error.code ?? String(error));
const results = [];
results.push(await outcome(bus.publish("job.succeeded", bytes("1"))));
results.push(await outcome(bus.publish("job.succeeded", bytes("2".repeat(8000)), { id: "job-2:succeeded" })));
results.push(await outcome(bus.publish("job.succeeded", bytes("3"))));
results.push(await outcome(bus.publish("job.succeeded", bytes("2-retry"), { id: "job-2:succeeded" })));
bus.subscribe(into(received.late), { durableName: "late", subjectFilter: "job.*" });
await new Promise((resolve) => setTimeout(resolve, 300));
await bus.close();
console.log(JSON.stringify({ results, received }));
`;

test("in-process event bus: a failed append rejects its publishes, delivers nothing, frees its dedup id and leaves whole lines", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-events-"));
  const { stdout } = await promisify(execFile)("prlimit", ["--fsize=4096", process.execPath, "--import", "tsx", "--input-type=module", "--eval", childScript], {
    env: { ...process.env, DATA_DIR: dataDir },
  });
  const child = JSON.parse(stdout) as { results: string[]; received: { reader: string[]; late: string[] } };
  assert.deepEqual(child.results, ["ok", "EFBIG", "ok", "ok"], "the append after a failed one starts on a whole line");
  assert.deepEqual(child.received.reader, ["1", "3", "2-retry"], "the event that failed is never delivered");
  assert.deepEqual(child.received.late, ["1", "3", "2-retry"]);
  const lines = await logLines(dataDir);
  assert.deepEqual(
    lines.map((line) => line.payload),
    ["1", "3", "2-retry"],
    "the retry with the failed event's id is written",
  );

  // A restart resumes after the last acknowledged event and skips nothing published later.
  const bus = new InProcessEventBus({ dataDir, log });
  const resumed: string[] = [];
  const everything: string[] = [];
  bus.subscribe(reader(resumed), { durableName: "reader", subjectFilter: "job.*" });
  bus.subscribe(reader(everything), { durableName: "audit", subjectFilter: "job.*" });
  await bus.publish("job.failed", bytes("4"));
  await eventually("event 4", () => resumed.length === 1 && everything.length === 4);
  await bus.close();
  assert.deepEqual(resumed, ["4"]);
  assert.deepEqual(everything, ["1", "3", "2-retry", "4"]);
  const seqs = (await logLines(dataDir)).map((line) => line.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((left, right) => left - right), "no seq is used twice");
  await rm(dataDir, { recursive: true, force: true });
});

/**
 * Publishes one event per turn of the event loop for `durationMs`, without waiting for the
 * appends: events keep arriving while a batch is being written. Returns how many were published.
 */
async function publishWhileAppending(bus: InProcessEventBus, durationMs: number): Promise<number> {
  const deadline = Date.now() + durationMs;
  const publishes: Promise<void>[] = [];
  while (Date.now() < deadline) {
    publishes.push(bus.publish("job.succeeded", bytes(`event-${publishes.length}`)));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(publishes);
  return publishes.length;
}

test("in-process event bus: an event is delivered only once its line is in the log", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-events-"));
  const bus = new InProcessEventBus({ dataDir, log });
  const path = join(dataDir, "events", "events.jsonl");
  const delivered: string[] = [];
  const unwritten: string[] = [];
  bus.subscribe(
    async (event) => {
      // A crash here would lose an event its handler has already acted on.
      if (!readFileSync(path, "utf8").includes(Buffer.from(event.data).toString("base64"))) unwritten.push(text(event.data));
      delivered.push(text(event.data));
    },
    { durableName: "reader", subjectFilter: "job.*" },
  );
  const count = await publishWhileAppending(bus, 1000);
  await eventually("every event", () => delivered.length === count);
  await bus.close();
  assert.deepEqual(unwritten, []);
  await rm(dataDir, { recursive: true, force: true });
});

test("in-process event bus: sweeps during appends write each event once", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-events-"));
  // Events expire after 50 ms and the sweep runs every 50 ms: it rewrites the log while batches are queued.
  const bus = new InProcessEventBus({ dataDir, log, maxAgeMs: 50 });
  // A later rewrite hides a repeat, so the log is looked at all along (whole lines only: one may be half written).
  const repeated = new Set<number>();
  const sampler = setInterval(() => {
    let lines: string[];
    try {
      lines = readFileSync(join(dataDir, "events", "events.jsonl"), "utf8").split("\n").slice(0, -1);
    } catch {
      return; // not written yet
    }
    let previous = 0;
    for (const entry of lines) {
      const { seq } = JSON.parse(entry) as { seq: number };
      if (seq <= previous) repeated.add(seq);
      previous = seq;
    }
  }, 5);
  await publishWhileAppending(bus, 1500);
  clearInterval(sampler);
  await bus.close();
  assert.deepEqual([...repeated], [], "seqs in the log are unique and increasing");
  const seqs = (await logLines(dataDir)).map((line) => line.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((left, right) => left - right));
  await rm(dataDir, { recursive: true, force: true });
});

/** A log line as the adapter writes it. */
function line(seq: number, payload: string, time = Date.now()): string {
  return JSON.stringify({ seq, subject: "job.succeeded", time, data: Buffer.from(payload).toString("base64") }) + "\n";
}

test("in-process event bus: a log with repeated or out-of-order seqs loads each event once, at its own seq", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-events-"));
  await mkdir(join(dataDir, "events"));
  // What an earlier version's sweep left: a batch written by the rewrite and appended again.
  await writeFile(join(dataDir, "events", "events.jsonl"), [line(1, "a"), line(2, "b"), line(3, "c"), line(2, "b"), line(3, "c"), line(4, "d")].join(""));
  const bus = new InProcessEventBus({ dataDir, log });
  const seen: string[] = [];
  bus.subscribe(reader(seen), { durableName: "reader", subjectFilter: "job.*" });
  await bus.publish("job.succeeded", bytes("e"));
  await eventually("five events", () => seen.length >= 5);
  await sleep(100);
  await bus.close();
  assert.deepEqual(seen, ["a", "b", "c", "d", "e"]);
  assert.deepEqual(
    (await logLines(dataDir)).map((entry) => `${entry.seq}:${entry.payload}`),
    ["1:a", "2:b", "3:c", "4:d", "5:e"],
  );
  await rm(dataDir, { recursive: true, force: true });
});

test("in-process event bus: a restart from a state whose ack floor is past the log's end reuses no seq", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "cutline-events-"));
  await mkdir(join(dataDir, "events"));
  // A crash after an event was acknowledged and before its batch was written (an earlier version
  // delivered events from unwritten batches): the log ends at 1, the durable has acknowledged 2.
  await writeFile(join(dataDir, "events", "events.jsonl"), line(1, "a"));
  await writeFile(join(dataDir, "events", "durables.json"), JSON.stringify({ lastSeq: 1, durables: { reader: { filter: "job.*", ackFloor: 2 } } }));
  const bus = new InProcessEventBus({ dataDir, log });
  const seen: string[] = [];
  bus.subscribe(reader(seen), { durableName: "reader", subjectFilter: "job.*" });
  await bus.publish("job.succeeded", bytes("after the crash"));
  await eventually("the event published after the restart", () => seen.length === 1);
  await bus.close();
  assert.deepEqual(seen, ["after the "]);
  await rm(dataDir, { recursive: true, force: true });
});

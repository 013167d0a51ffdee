// The gateway benchmark's server (scripts/bench-gateway.ts forks it with an IPC channel): a single
// node (`startSingleNode`, the same wiring as `npm start`) on the environment it is given, plus
// what only the server's own process can measure: its event-loop delay
// (perf_hooks.monitorEventLoopDelay) and utilisation over a window, and optionally a CPU profile
// of its main thread over the same window (node:inspector), so the load generator's own work is
// never in them. Messages in: {type: "window-start", profile: boolean}, {type: "window-end"},
// {type: "stop"}. Out: {type: "ready", url, adminTokenFile}, {type: "window-started"},
// {type: "window", ...figures}.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from "node:perf_hooks";
import { startSingleNode } from "../services/single-node.ts";

/** The histogram's sampling period (milliseconds): a stall shorter than this may go unseen. */
const EVENT_LOOP_RESOLUTION_MS = 1;
const NANOSECONDS_PER_MS = 1e6;

export type BenchNodeRequest = { type: "window-start"; profilePath?: string } | { type: "window-end" } | { type: "stop" };

export interface EventLoopWindow {
  type: "window";
  eventLoopDelayP50Ms: number;
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  /** Share of the window the main thread spent running callbacks rather than waiting (0..1). */
  eventLoopUtilisation: number;
  /** Where the window's CPU profile was written, when one was asked for. */
  profilePath?: string;
}

export type BenchNodeMessage =
  | { type: "ready"; url: string; adminTokenFile: string | undefined }
  | { type: "window-started" }
  | EventLoopWindow
  | { type: "error"; message: string };

const send = (message: BenchNodeMessage) => process.send?.(message);
if (!process.send) throw new Error("scripts/bench-gateway-node.ts is forked by scripts/bench-gateway.ts (it needs the IPC channel)");

const node = await startSingleNode(process.env);
await node.ready;

let histogram: IntervalHistogram | undefined;
let utilisationStart: EventLoopUtilization | undefined;
let session: Session | undefined;
let profilePath: string | undefined;

async function windowStart(request: Extract<BenchNodeRequest, { type: "window-start" }>): Promise<void> {
  histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  histogram.enable();
  utilisationStart = performance.eventLoopUtilization();
  profilePath = request.profilePath;
  if (profilePath) {
    session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    // 1 ms between samples: the per-request work under test is a few milliseconds.
    await session.post("Profiler.setSamplingInterval", { interval: 1000 });
    await session.post("Profiler.start");
  }
}

async function windowEnd(): Promise<EventLoopWindow> {
  if (!histogram || !utilisationStart) throw new Error("window-end without window-start");
  histogram.disable();
  const utilisation = performance.eventLoopUtilization(utilisationStart);
  const figures: EventLoopWindow = {
    type: "window",
    eventLoopDelayP50Ms: histogram.percentile(50) / NANOSECONDS_PER_MS,
    eventLoopDelayP99Ms: histogram.percentile(99) / NANOSECONDS_PER_MS,
    eventLoopDelayMaxMs: histogram.max / NANOSECONDS_PER_MS,
    eventLoopUtilisation: utilisation.utilization,
  };
  if (session && profilePath) {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(profilePath, JSON.stringify(profile));
    session.disconnect();
    session = undefined;
    figures.profilePath = profilePath;
  }
  histogram = undefined;
  return figures;
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await node.stop();
  } finally {
    process.exit(0);
  }
}

process.on("message", (request: BenchNodeRequest) => {
  const answer = async () => {
    if (request.type === "window-start") {
      await windowStart(request);
      send({ type: "window-started" });
    }
    else if (request.type === "window-end") send(await windowEnd());
    else await stop();
  };
  answer().catch((error: unknown) => send({ type: "error", message: error instanceof Error ? error.message : String(error) }));
});
// The benchmark died, however it died: the channel closes and the node goes with it.
process.on("disconnect", () => void stop());

send({ type: "ready", url: node.url, adminTokenFile: node.adminTokenFile });

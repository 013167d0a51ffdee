// A V8 CPU profile (.cpuprofile, as node --cpu-prof or the inspector's Profiler.stop writes it)
// summarised for the benchmarks: where a thread's time went, by package and by service.

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Rows printed per table. */
const ROWS_MAX = 12;
const SERVICES = ["gateway", "billing", "orchestrator", "inference", "common"] as const;

/** What a frame's code is: a service folder, an npm package, Node itself, or V8's own states. */
export function packageOf(frame: { functionName: string; url: string }): string {
  const { url, functionName } = frame;
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const service = /\/services\/([^/]+)\//.exec(url)?.[1];
  if (service && !url.includes("node_modules")) return `services/${service}`;
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url.slice(url.lastIndexOf("node_modules/")))?.[1];
  if (module) return module;
  if (url.startsWith("node:")) return "node (internals)";
  return url.replace(/^file:\/\//, "");
}

/**
 * Lines to print: the share of the window by package (self time), then by the service whose
 * code is nearest on the stack (the caller that asked for the work: a query run by PGlite for
 * billing counts as billing's), and the top functions by self time.
 */
export function summariseProfile(profile: CpuProfile): string[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfMs = new Map<number, number>();
  for (let index = 0; index < profile.samples.length; index++) {
    const id = profile.samples[index]!;
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
  }
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const byPackage = new Map<string, number>();
  const byService = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const frame = byId.get(id)!.callFrame;
    const name = packageOf(frame);
    add(byPackage, name, ms);
    if (name.startsWith("(")) {
      add(byService, name, ms);
      continue;
    }
    add(byFunction, `${frame.functionName || "(anonymous)"} ${name}:${frame.lineNumber + 1}`, ms);
    add(byService, nearestService(id, byId, parent) ?? "no service on the stack", ms);
  }
  const table = (title: string, rows: Map<string, number>) => [
    title,
    ...[...rows]
      .sort((a, b) => b[1] - a[1])
      .slice(0, ROWS_MAX)
      .map(([name, ms]) => `  ${((100 * ms) / totalMs).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(7)} ms  ${name}`),
  ];
  return [
    `window ${totalMs.toFixed(0)} ms, ${profile.samples.length} samples`,
    ...table("self time by package:", byPackage),
    ...table("by the service nearest on the stack:", byService),
    ...table("top functions (self time):", byFunction),
  ];
}

function nearestService(id: number, byId: Map<number, CpuProfile["nodes"][number]>, parent: Map<number, number>): string | undefined {
  for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
    const name = packageOf(byId.get(current)!.callFrame);
    if (name.startsWith("services/") && SERVICES.some((service) => name === `services/${service}`) && name !== "services/common") return name;
  }
  return undefined;
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}

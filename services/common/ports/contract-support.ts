// Small helpers shared by the port contract suites.
import { setTimeout as sleep } from "node:timers/promises";

export { sleep };

/** Polls `check` until it returns true; fails naming `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A suite runs when `skip` is undefined; else node:test reports it skipped with that reason. */
export interface ContractRun {
  skip?: string;
}

/** The current value of `cutline_dead_letters_total{port,subject}` in this process (0 before the first letter). */
export async function deadLetterCount(port: string, subject: string): Promise<number> {
  const { register } = await import("prom-client");
  const metric = register.getSingleMetric("cutline_dead_letters_total");
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values.find((value) => value.labels.port === port && value.labels.subject === subject)?.value ?? 0;
}

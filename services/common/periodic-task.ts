// Background sweeps (billing's hold expiry, the in-process blob and event sweeps) run on timers.
// A timer callback that returns a rejected promise is an unhandled rejection, and Node ends the
// process on one: a full disk or a dropped database connection during a sweep would take the
// whole service down. Every periodic task goes through here instead.
import type { Logger } from "./logging.ts";

export interface PeriodicTaskOptions {
  /** Named in the log line of a failed run. */
  name: string;
  /** Time between the starts of two runs, in milliseconds; a run still going skips the next start. */
  intervalMs: number;
  log: Logger;
  run: () => unknown;
}

export interface PeriodicTask {
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `run` every `intervalMs`, never two at once. A run that throws or rejects is logged and the
 * next period tries again. The timer does not keep the process alive.
 */
export function startPeriodicTask(options: PeriodicTaskOptions): PeriodicTask {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = Promise.resolve()
      .then(options.run)
      .then(
        () => undefined,
        (error: unknown) => options.log.error({ err: error, task: options.name }, `${options.name} failed; retrying in ${options.intervalMs} ms`),
      )
      .catch(() => undefined) // a logger that throws must not turn into an unhandled rejection either
      .finally(() => {
        running = undefined;
      });
  }, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

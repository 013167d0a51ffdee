// Billing's metrics: credits through holds (reserved, captured, released), holds still open, and
// holds the sweeper ended at their deadline. Credits are decimal (1 credit = 1000 millicredits).
import { Counter, Gauge, register } from "prom-client";

// Registered once per process: tests start several billing instances, which share the series.
function counter(name: string, help: string): Counter<string> {
  return (register.getSingleMetric(name) as Counter<string> | undefined) ?? new Counter({ name, help });
}

const reserved = counter("cutline_credits_reserved_total", "Credits put on hold by reservations (replays not counted), in credits.");
const captured = counter("cutline_credits_captured_total", "Credits charged by captures, overage included, in credits.");
const released = counter(
  "cutline_credits_released_total",
  "Credits a hold gave back to its account: all of it on release or expiry, the unused rest on a capture below the hold, in credits.",
);
const refunded = counter(
  "cutline_credits_refunded_total",
  "Credits refunded payments took back: unspent ones at the refund, and ones a job held then as its hold gave them back, in credits.",
);
const expired = counter("cutline_holds_expired_total", "Holds the sweeper ended because their deadline passed: a job that never captured nor released them (a leak signal).");
const open =
  (register.getSingleMetric("cutline_holds_open") as Gauge<string> | undefined) ??
  new Gauge({ name: "cutline_holds_open", help: "Holds neither captured, released nor expired, as of the sweeper's last run (holds)." });

const credits = (millicredits: number) => millicredits / 1000;

export function countReserved(millicredits: number): void {
  reserved.inc(credits(millicredits));
}

export function countSettled(action: "capture" | "release" | "expire", result: { capturedMillicredits: number; returnedMillicredits: number }): void {
  if (result.capturedMillicredits > 0) captured.inc(credits(result.capturedMillicredits));
  if (result.returnedMillicredits > 0) released.inc(credits(result.returnedMillicredits));
  if (action === "expire") expired.inc();
}

export function countRefunded(millicredits: number): void {
  if (millicredits > 0) refunded.inc(credits(millicredits));
}

export function setOpenHolds(count: number): void {
  open.set(count);
}

// Figures as people read them: credits with up to three decimals (the ledger's millicredits),
// dates in the reader's locale, bytes in KB/MB.
import type { Timestamp } from "@bufbuild/protobuf/wkt";

export function credits(millicredits: bigint | number): string {
  const value = Number(millicredits) / 1000;
  return value.toLocaleString(undefined, { maximumFractionDigits: 3 });
}

export function dateOf(timestamp: Timestamp | undefined): Date | undefined {
  return timestamp === undefined ? undefined : new Date(Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1e6));
}

export function day(timestamp: Timestamp | undefined, never = "never"): string {
  const date = dateOf(timestamp);
  return date === undefined ? never : date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  const [value, unit] = count < 1024 * 1024 ? [count / 1024, "KB"] : [count / 1024 / 1024, "MB"];
  // Three significant figures are enough to tell a file from a limit: 4.5 KB, 470 KB, 25 MB.
  return `${value >= 100 ? Math.round(value) : Number(value.toFixed(1))} ${unit}`;
}

export function percent(fraction: number): string {
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
}

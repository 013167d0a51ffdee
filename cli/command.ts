// What every `cutline` command is: its flags (node:util parseArgs), its help, and a run that
// returns the exit code. Exit codes: 0 done, 1 something failed (a file, a call, the server),
// 2 the command line was wrong (nothing was sent), 130 stopped by Ctrl-C.
import type { ParseArgsConfig } from "node:util";
import { CliError, type Connection } from "./connection.ts";

export type Options = NonNullable<ParseArgsConfig["options"]>;
export type Values = Record<string, string | boolean | undefined>;

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Stopped by Ctrl-C (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

export interface CommandContext {
  values: Values;
  positionals: string[];
  json: boolean;
  /** Opened on first use, so `--help` and usage errors need no key. */
  connection(): Connection;
  /** Standard output: results, and with --json the JSON line last. */
  print(line: string): void;
  /** Standard error: what went wrong, and notes that are not results. */
  warn(line: string): void;
}

export interface Command {
  /** One line for `cutline --help`. */
  summary: string;
  /** The command's own `--help`. */
  help: string;
  options: Options;
  run(context: CommandContext): Promise<number>;
}

export const text = { type: "string" } as const;
export const flag = { type: "boolean" } as const;

/** A flag's value among `choices`, or `fallback` when not given; anything else is a usage error. */
export function choice<T extends string>(values: Values, name: string, choices: readonly T[], fallback: T): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (typeof raw === "string" && (choices as readonly string[]).includes(raw)) return raw as T;
  throw new CliError(`--${name} must be one of ${choices.join(", ")} (got ${JSON.stringify(raw)})`, 2);
}

export function requiredText(values: Values, name: string): string {
  const raw = values[name];
  if (typeof raw !== "string" || raw === "") throw new CliError(`--${name} is required`, 2);
  return raw;
}

/** A whole number flag within [min, max], or `fallback`. */
export function wholeNumber(values: Values, name: string, bounds: { min: number; max: number; fallback: number }): number {
  const raw = values[name];
  if (raw === undefined) return bounds.fallback;
  const value = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || value < bounds.min || value > bounds.max) {
    throw new CliError(`--${name} must be a whole number from ${bounds.min} to ${bounds.max} (got ${JSON.stringify(raw)})`, 2);
  }
  return value;
}

/** "#rrggbb" (or "rrggbb"), as the API takes it; undefined when not given. */
export function colourOf(values: Values, name: string): string | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const match = typeof raw === "string" ? /^#?([0-9a-f]{6})$/i.exec(raw) : null;
  if (!match) throw new CliError(`--${name} must be a colour as #rrggbb (got ${JSON.stringify(raw)})`, 2);
  return `#${match[1]!.toLowerCase()}`;
}

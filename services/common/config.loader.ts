// The only place that reads process.env. Each service declares its variables with these
// parsers; `loadConfig` reads them all and throws one error listing every bad variable.

import { redactCredentials, redactUrl } from "./credentials.ts";

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/** A variable: how to parse it, its default, and what it means (for README's table). */
export interface Variable<T> {
  readonly description: string;
  /** Unset (or empty) means this; undefined with `required` means the variable must be set. */
  readonly defaultValue: T;
  /** The whole value is a secret: a bad one is reported by its length only. @default false */
  readonly secret?: boolean;
  parse(raw: string): T;
}

// How a bad value is quoted in the error: never a secret, never a password inside a URL.
function shown(variable: Variable<unknown>, raw: string): string {
  if (variable.secret) return `<secret, ${raw.length} characters>`;
  return JSON.stringify(redactUrl(raw));
}

type Parsed<Spec> = { [K in keyof Spec]: Spec[K] extends Variable<infer T> ? T : never };

export function loadConfig<Spec extends Record<string, Variable<unknown>>>(
  spec: Spec,
  environment: NodeJS.ProcessEnv = process.env,
): Parsed<Spec> {
  const problems: string[] = [];
  const result: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(spec)) {
    const raw = environment[name];
    if (raw === undefined || raw === "") {
      result[name] = variable.defaultValue;
      continue;
    }
    try {
      result[name] = variable.parse(raw);
    } catch (error) {
      const reason = redactCredentials(error instanceof Error ? error.message : String(error));
      problems.push(`${name}=${shown(variable, raw)}: ${reason}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result as Parsed<Spec>;
}

export function integer(description: string, defaultValue: number, bounds: { min?: number; max?: number } = {}): Variable<number> {
  const min = bounds.min ?? 0;
  const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
  return {
    description,
    defaultValue,
    parse(raw) {
      if (!/^-?\d+$/.test(raw.trim())) throw new Error(`expected an integer between ${min} and ${max}`);
      const value = Number(raw);
      if (value < min || value > max) throw new Error(`expected an integer between ${min} and ${max}`);
      return value;
    },
  };
}

export function port(description: string, defaultValue: number): Variable<number> {
  return integer(description, defaultValue, { min: 0, max: 65535 });
}

/** A port, or "off" for none; 0 picks a free port. */
export function portOrOff(description: string, defaultValue: number): Variable<number | undefined> {
  const parsePort = port(description, defaultValue).parse;
  return { description, defaultValue, parse: (raw) => (raw.trim().toLowerCase() === "off" ? undefined : parsePort(raw)) };
}

export function text(description: string, defaultValue: string): Variable<string> {
  return { description, defaultValue, parse: (raw) => raw };
}

export function optionalText(description: string): Variable<string | undefined> {
  return { description, defaultValue: undefined, parse: (raw) => raw };
}

export function oneOf<const T extends string>(description: string, values: readonly T[], defaultValue: T): Variable<T> {
  return {
    description,
    defaultValue,
    parse(raw) {
      if (!(values as readonly string[]).includes(raw)) throw new Error(`expected one of ${values.join(", ")}`);
      return raw as T;
    },
  };
}

export function list(description: string, defaultValue: string[]): Variable<string[]> {
  return {
    description,
    defaultValue,
    parse: (raw) =>
      raw
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item.length > 0),
  };
}

/** A comma-separated list of `values` (any case), in the order given: at least one, none twice. */
export function listOf<const T extends string>(description: string, values: readonly T[], defaultValue: T[]): Variable<T[]> {
  return {
    description,
    defaultValue,
    parse(raw) {
      const items = list(description, []).parse(raw).map((item) => item.toLowerCase());
      if (items.length === 0) throw new Error(`expected at least one of ${values.join(", ")}, comma-separated`);
      for (const [index, item] of items.entries()) {
        if (!(values as readonly string[]).includes(item)) throw new Error(`"${item}" is not one of ${values.join(", ")}`);
        if (items.indexOf(item) !== index) throw new Error(`"${item}" is listed twice`);
      }
      return items as T[];
    },
  };
}

export function boolean(description: string, defaultValue: boolean): Variable<boolean> {
  return {
    description,
    defaultValue,
    parse(raw) {
      if (["1", "true", "yes"].includes(raw.toLowerCase())) return true;
      if (["0", "false", "no"].includes(raw.toLowerCase())) return false;
      throw new Error("expected true or false");
    },
  };
}

export function url(description: string): Variable<string | undefined> {
  return {
    description,
    defaultValue: undefined,
    parse(raw) {
      new URL(raw); // throws "Invalid URL"
      return raw;
    },
  };
}

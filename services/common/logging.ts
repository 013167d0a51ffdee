import { pino, type DestinationStream, type Logger } from "pino";
import { redactValue } from "./credentials.ts";
import { traceLogFields } from "./trace-log-fields.ts";

export type { Logger };

/**
 * Structured JSON logs on stdout (or `destination`), one logger per service, tagged with its name.
 * Passwords and tokens inside URLs (DATABASE_URL, NATS_URL, and any error quoting them) are
 * written as "***", in messages and in logged fields alike. A line written inside a span carries
 * its trace_id and span_id (nothing when tracing is off).
 */
export function createLogger(service: string, level: string = "info", destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: traceLogFields,
    hooks: {
      logMethod(this: Logger, args: unknown[], method: (...args: unknown[]) => void) {
        method.apply(this, args.map((argument) => redactValue(argument)));
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

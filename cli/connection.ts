// How the CLI reaches a gateway: CUTLINE_URL (default http://127.0.0.1:8080), the API key from
// CUTLINE_API_KEY or else the key single-node mode writes to $CUTLINE_DATA_DIR/api-key (default
// ./.data), and the generated clients over Connect (HTTP/1.1) or, with --grpc, gRPC (HTTP/2).
// Refusals that say "wait" (RESOURCE_EXHAUSTED with a retry-after) and brief outages (UNAVAILABLE)
// are waited out and retried here, so every command shares one retry rule; every mutating call the
// CLI makes carries an idempotency key, so a retry never charges twice.
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { REASON_HEADER } from "../services/common/errors.ts";
import { failedJobOf } from "./follow-up-keys.ts";

export const DEFAULT_URL = "http://127.0.0.1:8080";
export const DEFAULT_DATA_DIR = "./.data";
/** Longest wait the CLI accepts from one retry-after answer, in seconds: a longer one (a monthly quota) fails the call instead. */
export const RETRY_AFTER_SECONDS_MAX = 120;
/** Retries of one call refused with a retry-after (rate or concurrency limit, full queue). */
export const RATE_LIMIT_RETRIES_MAX = 30;
/** Retries of one call that met UNAVAILABLE (a restart, a dropped connection), with a doubling delay from 500 ms. */
export const UNAVAILABLE_RETRIES_MAX = 4;
const UNAVAILABLE_DELAY_MS_MIN = 500;
/** Wait when a RESOURCE_EXHAUSTED answer names no retry-after, in seconds. */
const RETRY_AFTER_SECONDS_DEFAULT = 1;

/** What the user got wrong (exit 2) or what went wrong (exit 1), said in one line. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

export interface ConnectionOptions {
  environment: NodeJS.ProcessEnv;
  grpc: boolean;
}

export interface Connection {
  url: string;
  client<T extends DescService>(service: T): Client<T>;
}

/** The API key: CUTLINE_API_KEY, else the single node's `api-key` file in CUTLINE_DATA_DIR. */
export function apiKeyOf(environment: NodeJS.ProcessEnv): string {
  const configured = environment.CUTLINE_API_KEY?.trim();
  if (configured) return configured;
  const file = join(environment.CUTLINE_DATA_DIR || DEFAULT_DATA_DIR, "api-key");
  try {
    const key = readFileSync(file, "utf8").trim();
    if (key) return key;
  } catch {
    // Said below, with what to do.
  }
  throw new CliError(`no API key: set CUTLINE_API_KEY, or run where \`npm start\` wrote ${file} (CUTLINE_DATA_DIR)`);
}

export function connect(options: ConnectionOptions): Connection {
  const url = (options.environment.CUTLINE_URL || DEFAULT_URL).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]+/.test(url)) throw new CliError(`CUTLINE_URL=${JSON.stringify(url)} is not an http(s) URL`, 2);
  const apiKey = apiKeyOf(options.environment);
  const authenticate: Interceptor = (next) => (request) => {
    request.header.set("x-api-key", apiKey);
    return next(request);
  };
  const transport: Transport = options.grpc
    ? createGrpcTransport({ baseUrl: url, interceptors: [authenticate] })
    : createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [authenticate] });
  return { url, client: (service) => createClient(service, transport) };
}

export interface RetryEvents {
  /** Told before each wait, with its length and why. */
  onWait?(waitMs: number, error: ConnectError): void;
}

/** Seconds a RESOURCE_EXHAUSTED answer asks the caller to wait (its retry-after), or undefined. */
export function retryAfterSecondsOf(error: ConnectError): number | undefined {
  const header = error.metadata.get("retry-after");
  if (header === null) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

/**
 * `call`, retried while the server says to wait (RESOURCE_EXHAUSTED with a retry-after of at most
 * RETRY_AFTER_SECONDS_MAX, up to RATE_LIMIT_RETRIES_MAX times) or is briefly away (UNAVAILABLE, up
 * to UNAVAILABLE_RETRIES_MAX times). Anything else is the caller's to handle, and so is a job's
 * server-side failure (failedJobOf): the same key replays it, so only a follow-up key can help.
 */
export async function withRetries<T>(call: () => Promise<T>, events: RetryEvents = {}): Promise<T> {
  let rateLimited = 0;
  let unavailable = 0;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const waitMs = retryDelayMs(error, rateLimited, unavailable);
      if (waitMs === undefined) throw error;
      if ((error as ConnectError).code === Code.ResourceExhausted) rateLimited += 1;
      else unavailable += 1;
      events.onWait?.(waitMs, error as ConnectError);
      await sleep(waitMs);
    }
  }
}

function retryDelayMs(error: unknown, rateLimited: number, unavailable: number): number | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  // A job that failed (queue_full, model_unavailable) is replayed as failed under the same key: waiting does not help.
  if (failedJobOf(error)) return undefined;
  if (error.code === Code.ResourceExhausted) {
    const seconds = retryAfterSecondsOf(error) ?? RETRY_AFTER_SECONDS_DEFAULT;
    if (seconds > RETRY_AFTER_SECONDS_MAX || rateLimited >= RATE_LIMIT_RETRIES_MAX) return undefined;
    return Math.max(seconds, 0.1) * 1000;
  }
  if (error.code === Code.Unavailable && unavailable < UNAVAILABLE_RETRIES_MAX) return UNAVAILABLE_DELAY_MS_MIN * 2 ** unavailable;
  return undefined;
}

/** A server's refusal in one line: its message and its stable reason (`insufficient_credits`). */
export function describeError(error: unknown): { reason: string; message: string } {
  if (error instanceof ConnectError) {
    const reason = error.metadata.get(REASON_HEADER) ?? Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
    return { reason, message: error.rawMessage };
  }
  if (error instanceof CliError) return { reason: "cli", message: error.message };
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return { reason: typeof code === "string" ? code.toLowerCase() : "error", message: error instanceof Error ? error.message : String(error) };
}

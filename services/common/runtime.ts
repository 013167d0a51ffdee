import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConfigError } from "./config.loader.ts";
import { serviceTokenInterceptor } from "./service-auth.ts";
import { clientTracingInterceptor } from "./tracing.ts";

/** What a started process gives back: how to stop it, and how long stopping may take. */
export interface Running {
  stop(): Promise<void>;
  shutdownTimeoutMs: number;
  /**
   * Rejects when the process, though serving its health and metrics, cannot go on (the model did
   * not load): runMain prints why, stops it as on SIGTERM, and exits 1. Never settles otherwise.
   */
  failed?: Promise<unknown>;
}

/**
 * Starts a process and owns its exit: a bad configuration prints every bad variable and exits 1;
 * SIGTERM or SIGINT stops intake and drains, and a drain past the timeout is cut short; a
 * failure after the start (`Running.failed`) drains the same way and exits 1.
 */
export async function runMain(name: string, start: () => Promise<Running>): Promise<void> {
  let running: Running;
  try {
    running = await start();
  } catch (error) {
    if (error instanceof ConfigError) console.error(`${name}: ${error.message}`);
    else console.error(`${name}: failed to start:`, error);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = async (why: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    console.error(`${name}: ${why}, draining (at most ${running.shutdownTimeoutMs} ms)`);
    // A margin over the servers' own timeout: they cut connections first, this cuts the process.
    setTimeout(() => {
      console.error(`${name}: shutdown did not finish in time; exiting`);
      process.exit(1);
    }, running.shutdownTimeoutMs + 5_000).unref();
    try {
      await running.stop();
      process.exit(exitCode);
    } catch (error) {
      console.error(`${name}: shutdown failed:`, error);
      process.exit(1);
    }
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM received", 0));
  process.once("SIGINT", () => void shutdown("SIGINT received", 0));
  running.failed?.catch((error: unknown) => {
    console.error(`${name}: failed to start:`, error);
    void shutdown("stopping", 1);
  });
}

export interface ServiceTransportOptions {
  /** Shared secret sent as `cutline-service-token` on every call (see service-auth.ts); unset sends none. */
  token?: string;
  /**
   * Deadline of a unary call that names none itself, in milliseconds: a peer that accepts the
   * connection and never answers fails the call with DEADLINE_EXCEEDED instead of holding it (and
   * the job or request behind it) forever. The deadline travels as `grpc-timeout`, so the callee
   * stops working on a call its caller gave up. @default 10000 ms
   */
  timeoutMs?: number;
  /**
   * Deadline of a server stream that names none itself (WatchJob), in milliseconds. A stream may
   * rightly stay open as long as a job runs (minutes for a video), so the unary deadline would cut
   * it; every caller also passes its own signal (the gateway's SYNC_TIMEOUT_MS, or the public
   * watcher's connection), and HTTP/2 keep-alive PINGs end it within `pingIntervalMs` +
   * `pingTimeoutMs` when the peer's host or process dies. This longer bound only catches a peer
   * that stays alive yet never ends the stream. @default 3600000 ms (1 h)
   */
  streamTimeoutMs?: number;
  /** A connection with open calls is PINGed this often; no answer within 15 s closes it and fails its calls. @default 30000 ms */
  pingIntervalMs?: number;
  /** Run on every call after tracing and the token (the gateway's AccountChanges on its billing client). */
  interceptors?: Interceptor[];
}

/** A client transport to another service over gRPC (HTTP/2 cleartext), as in the mesh. */
export function serviceTransport(baseUrl: string, options: ServiceTransportOptions = {}): Transport {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const streamTimeoutMs = options.streamTimeoutMs ?? 3_600_000;
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [clientTracingInterceptor(), ...(options.token === undefined ? [] : [serviceTokenInterceptor(options.token)]), ...(options.interceptors ?? [])],
    pingIntervalMs: options.pingIntervalMs ?? 30_000,
    pingTimeoutMs: 15_000,
  });
  // Connect's `defaultTimeoutMs` is one value for every method; the stream/unary split needs the
  // default chosen per call. A caller's own `timeoutMs` still wins (0 or less means none).
  return {
    unary: (method, signal, callTimeoutMs, ...rest) => transport.unary(method, signal, callTimeoutMs ?? timeoutMs, ...rest),
    stream: (method, signal, callTimeoutMs, ...rest) =>
      transport.stream(method, signal, callTimeoutMs ?? (method.methodKind === "server_streaming" ? streamTimeoutMs : timeoutMs), ...rest),
  };
}

/**
 * Retries `call` while the peer is unreachable (it may still be starting in the mesh), up to
 * `attemptsMax` times `delayMs` apart; any other error is thrown at once.
 */
export async function whenAvailable<T>(call: () => Promise<T>, options: { attemptsMax?: number; delayMs?: number } = {}): Promise<T> {
  const attemptsMax = options.attemptsMax ?? 60;
  const delayMs = options.delayMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const unavailable = error instanceof ConnectError && error.code === Code.Unavailable;
      if (!unavailable || attempt >= attemptsMax) throw error;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

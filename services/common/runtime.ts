import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConfigError } from "./config.ts";

/** What a started process gives back: how to stop it, and how long stopping may take. */
export interface Running {
  stop(): Promise<void>;
  shutdownTimeoutMs: number;
}

/**
 * Starts a process and owns its exit: a bad configuration prints every bad variable and exits 1;
 * SIGTERM or SIGINT stops intake and drains, and a drain past the timeout is cut short.
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
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`${name}: ${signal} received, draining (at most ${running.shutdownTimeoutMs} ms)`);
    // A margin over the servers' own timeout: they cut connections first, this cuts the process.
    setTimeout(() => {
      console.error(`${name}: shutdown did not finish in time; exiting`);
      process.exit(1);
    }, running.shutdownTimeoutMs + 5_000).unref();
    try {
      await running.stop();
      process.exit(0);
    } catch (error) {
      console.error(`${name}: shutdown failed:`, error);
      process.exit(1);
    }
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

/** A client transport to another service over gRPC (HTTP/2 cleartext), as in the mesh. */
export function serviceTransport(baseUrl: string): Transport {
  return createGrpcTransport({ baseUrl });
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

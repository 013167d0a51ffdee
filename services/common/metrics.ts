import type { Interceptor } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Histogram, register } from "prom-client";

// One registry per process: in single-node mode the four services share it, and their
// metrics are told apart by the `service` label.
let defaultsCollected = false;
export function processMetrics(): typeof register {
  if (!defaultsCollected) {
    collectDefaultMetrics();
    defaultsCollected = true;
  }
  return register;
}

const rpcTotal = new Counter({
  name: "cutline_rpc_requests_total",
  help: "RPCs handled, by service, method and gRPC code name.",
  labelNames: ["service", "method", "code"] as const,
});

const rpcSeconds = new Histogram({
  name: "cutline_rpc_duration_seconds",
  help: "RPC handling time in seconds (for streams: until the stream ends).",
  labelNames: ["service", "method"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

/** Counts and times every unary RPC; streams are counted when they open. */
export function metricsInterceptor(): Interceptor {
  return (next) => async (request) => {
    const labels = { service: request.service.typeName, method: request.method.name };
    const stopTimer = rpcSeconds.startTimer(labels);
    try {
      const response = await next(request);
      rpcTotal.inc({ ...labels, code: "ok" });
      return response;
    } catch (error) {
      rpcTotal.inc({ ...labels, code: ConnectError.from(error).code.toString() });
      throw error;
    } finally {
      stopTimer();
    }
  };
}

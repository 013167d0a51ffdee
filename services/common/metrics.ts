import type { Interceptor } from "@connectrpc/connect";
import { type Code, ConnectError } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, register } from "prom-client";
import type { HttpRequest, HttpRoutes } from "./server.ts";

// One registry per process: in single-node mode the four services share it, and their
// metrics are told apart by the `service` label.
let defaultsCollected = false;
export function processMetrics(): typeof register {
  if (!defaultsCollected) {
    collectDefaultMetrics();
    watchEventLoop();
    defaultsCollected = true;
  }
  return register;
}

/** Timer period of the event-loop watch (milliseconds); a stall shorter than this can go unseen. */
export const EVENT_LOOP_SAMPLE_MS = 10;

/**
 * The longest event-loop stall since the previous scrape, as a gauge reset by each scrape, so a
 * scraper sees every stall once whatever its interval (a second scraper shortens the first's
 * windows). Measured like perf_hooks.monitorEventLoopDelay, by how late a 10 ms timer fires, but
 * by hand: resetting that histogram also forgets the interval in progress, so a stall that
 * begins just after a scrape would go unreported.
 */
function watchEventLoop(): void {
  let previous = performance.now();
  let stallMsMax = 0;
  setInterval(() => {
    const now = performance.now();
    stallMsMax = Math.max(stallMsMax, now - previous - EVENT_LOOP_SAMPLE_MS);
    previous = now;
  }, EVENT_LOOP_SAMPLE_MS).unref();
  new Gauge({
    name: "cutline_event_loop_delay_max_seconds",
    help: "Longest event-loop stall since the previous scrape (seconds; reset by each scrape; sampled every 10 ms).",
    collect() {
      // A stall that has just ended, before the timer noticed it, is reported by the next scrape.
      this.set(Math.max(0, stallMsMax) / 1000);
      stallMsMax = 0;
    },
  });
  // A timer also fires late while the thread waits for a core on a busy machine; the time the
  // loop spent running bounds how long any one callback blocked it, whatever the scheduler did.
  let utilisation = performance.eventLoopUtilization();
  new Gauge({
    name: "cutline_event_loop_active_seconds",
    help: "Time the event loop spent running callbacks (not waiting) since the previous scrape (seconds; reset by each scrape).",
    collect() {
      const since = performance.eventLoopUtilization(utilisation);
      utilisation = performance.eventLoopUtilization();
      this.set(since.active / 1000);
    },
  });
}

const rpcTotal = new Counter({
  name: "cutline_rpc_requests_total",
  help: "RPCs handled, by service, method and code: `ok` on success, else the gRPC code's number (3 invalid_argument, 13 internal, 14 unavailable).",
  labelNames: ["service", "method", "code"] as const,
});

const rpcSeconds = new Histogram({
  name: "cutline_rpc_duration_seconds",
  help: "RPC handling time in seconds (for streams: until the stream ends).",
  labelNames: ["service", "method"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

/** Counts an RPC refused before the interceptors ran (a unary request message that does not parse). */
export function countRpc(labels: { service: string; method: string }, code: Code): void {
  rpcTotal.inc({ ...labels, code: code.toString() });
}

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

const httpTotal = new Counter({
  name: "cutline_http_requests_total",
  help: "Plain-HTTP requests (REST, admin, vendor drop-in, web app) the gateway's routes saw, by route pattern, method and response status.",
  labelNames: ["route", "method", "status"] as const,
});

const httpSeconds = new Histogram({
  name: "cutline_http_request_duration_seconds",
  help: "Plain-HTTP request time in seconds, from routing until the response ended (uploads included), by route pattern and method.",
  labelNames: ["route", "method"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
});

// Labels come from a fixed set, never from the request as sent: a client must not be able to
// mint series with made-up paths or methods.
const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const routeOfRequest = new WeakMap<HttpRequest, string>();

/** Names the route pattern (`/v1/jobs/{id}`) a request matched, for the HTTP metrics' `route` label. */
export function markHttpRoute(request: HttpRequest, route: string): void {
  routeOfRequest.set(request, route);
}

/** The route pattern a request matched (markHttpRoute), if any: the HTTP span's name and http.route. */
export function httpRouteOf(request: HttpRequest): string | undefined {
  return routeOfRequest.get(request);
}

/**
 * Counts and times every request the routes see, labelled with the pattern a route marked
 * (markHttpRoute); a request the routes answered without marking is "other", one they left to
 * the server's 404 is "unmatched".
 */
export function measureHttpRoutes(routes: HttpRoutes): HttpRoutes {
  return async (request, response) => {
    const method = HTTP_METHODS.has(request.method ?? "") ? request.method! : "other";
    const started = performance.now();
    let handled = false;
    response.once("close", () => {
      const route = routeOfRequest.get(request) ?? (handled ? "other" : "unmatched");
      httpTotal.inc({ route, method, status: String(response.statusCode) });
      httpSeconds.observe({ route, method }, (performance.now() - started) / 1000);
    });
    handled = await routes(request, response);
    return handled;
  };
}

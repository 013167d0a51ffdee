import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventEmitter, on } from "node:events";
import { Gauge, register } from "prom-client";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
} from "./gen/grpc/health/v1/health_pb.ts";

export { ServingStatus };

// One series per gRPC service name (the empty name, the whole server, is labelled "server"); every
// registry of the process writes to it, as single-node mode has one.
const healthStatus =
  (register.getSingleMetric("cutline_health_status") as Gauge<string> | undefined) ??
  new Gauge({ name: "cutline_health_status", help: "1 while the gRPC health service reports SERVING for the service (\"server\": the whole process), else 0.", labelNames: ["service"] });

/**
 * Serving status per service name, as the standard gRPC health protocol reports it. The empty
 * name is the whole server. Everything starts NOT_SERVING and is set SERVING by `main.ts` once
 * its dependencies (database, queue, model) are ready.
 */
export class HealthRegistry {
  readonly #statuses = new Map<string, ServingStatus>([["", ServingStatus.NOT_SERVING]]);
  readonly #changes = new EventEmitter();
  #stopped = false;

  constructor() {
    this.#changes.setMaxListeners(0);
    this.set("", ServingStatus.NOT_SERVING);
  }

  register(service: string): void {
    if (!this.#statuses.has(service)) this.set(service, ServingStatus.NOT_SERVING);
  }

  set(service: string, status: ServingStatus): void {
    if (this.#stopped && status === ServingStatus.SERVING) return;
    this.#statuses.set(service, status);
    healthStatus.set({ service: service === "" ? "server" : service }, status === ServingStatus.SERVING ? 1 : 0);
    this.#changes.emit(service, status);
  }

  /** Everything SERVING: the server and every registered service. */
  setAllServing(): void {
    for (const service of this.#statuses.keys()) this.set(service, ServingStatus.SERVING);
  }

  /** On shutdown: probes fail at once so no new traffic is routed here, and nothing sets SERVING again. */
  setAllNotServing(): void {
    this.#stopped = true;
    for (const service of this.#statuses.keys()) this.set(service, ServingStatus.NOT_SERVING);
  }

  /**
   * Health that follows what the process needs: SERVING while every named condition holds,
   * NOT_SERVING while any does not (all start false). Returns the setter of one condition.
   */
  follow(conditions: readonly string[]): (condition: string, holds: boolean) => void {
    const holding = new Map(conditions.map((condition) => [condition, false]));
    return (condition, holds) => {
      if (!holding.has(condition)) throw new Error(`unknown health condition "${condition}"; known: ${conditions.join(", ")}`);
      if (holding.get(condition) === holds) return;
      holding.set(condition, holds);
      const serving = [...holding.values()].every(Boolean);
      for (const service of this.#statuses.keys()) this.set(service, serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    };
  }

  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  all(): ReadonlyMap<string, ServingStatus> {
    return this.#statuses;
  }

  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    yield this.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
    try {
      for await (const [status] of on(this.#changes, service, { signal })) yield status as ServingStatus;
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  }
}

export function createHealthHandlers(registry: HealthRegistry): ServiceImpl<typeof Health> {
  return {
    check(request) {
      const status = registry.get(request.service);
      if (status === undefined) throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status });
    },
    list() {
      const statuses: Record<string, { status: ServingStatus }> = {};
      for (const [service, status] of registry.all()) statuses[service] = { status };
      return create(HealthListResponseSchema, { statuses });
    },
    async *watch(request, context) {
      for await (const status of registry.watch(request.service, context.signal)) {
        yield create(HealthCheckResponseSchema, { status });
      }
    },
  };
}

export { Health };

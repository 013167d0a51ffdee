import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventEmitter, on } from "node:events";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
} from "./gen/grpc/health/v1/health_pb.ts";

export { ServingStatus };

/**
 * Serving status per service name, as the standard gRPC health protocol reports it. The empty
 * name is the whole server. Everything starts NOT_SERVING and is set SERVING by `main.ts` once
 * its dependencies (database, queue, model) are ready.
 */
export class HealthRegistry {
  readonly #statuses = new Map<string, ServingStatus>([["", ServingStatus.NOT_SERVING]]);
  readonly #changes = new EventEmitter();

  constructor() {
    this.#changes.setMaxListeners(0);
  }

  register(service: string): void {
    if (!this.#statuses.has(service)) this.#statuses.set(service, ServingStatus.NOT_SERVING);
  }

  set(service: string, status: ServingStatus): void {
    this.#statuses.set(service, status);
    this.#changes.emit(service, status);
  }

  /** Everything SERVING: the server and every registered service. */
  setAllServing(): void {
    for (const service of this.#statuses.keys()) this.set(service, ServingStatus.SERVING);
  }

  /** On shutdown: probes fail at once so no new traffic is routed here. */
  setAllNotServing(): void {
    for (const service of this.#statuses.keys()) this.set(service, ServingStatus.NOT_SERVING);
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

// OpenTelemetry traces: one span per inbound RPC, REST request and queue message, the W3C trace
// context carried in Connect headers and in NATS (or in-process) message headers, so that one
// image call is one trace from the gateway through billing and the orchestrator to the inference
// worker and back. Off by default: then no provider is registered, every hook below returns at
// its first line, and the OpenTelemetry API answers with its no-op tracer. The SDK and the OTLP
// exporter are imported only when tracing starts: every service and script loads this module (and
// the logger), and with tracing off they would cost each process their load time for nothing.
import type { Interceptor } from "@connectrpc/connect";
import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter } from "@opentelemetry/api";
import type { NodeTracerProvider, SpanExporter } from "@opentelemetry/sdk-trace-node";
import { oneOf, optionalText, url } from "./config.loader.ts";
import type { BusEvent, EventBus } from "./ports/event-bus.ts";
import type { WorkMessage, WorkQueue } from "./ports/work-queue.ts";

/** Variables every service reads (spread into commonConfigSpec). */
export const tracingConfigSpec = {
  CUTLINE_TRACING: oneOf("OpenTelemetry traces: `off` registers no tracer (no cost), `otlp` exports spans over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT.", ["off", "otlp"], "off"),
  OTEL_EXPORTER_OTLP_ENDPOINT: url("OTLP/HTTP collector base URL (spans go to <url>/v1/traces) when CUTLINE_TRACING=otlp; unset means http://localhost:4318."),
  OTEL_SERVICE_NAME: optionalText("Service name on exported spans (the resource's service.name); unset means the service's own name (gateway, billing, orchestrator, inference; cutline in single-node mode)."),
} as const;

/** The collector the OTLP specification names as the default. */
const OTLP_ENDPOINT_DEFAULT = "http://localhost:4318";

/** The attribute naming the Cutline service that handled a span (single-node mode runs all four under one service.name). */
export const SERVICE_ATTRIBUTE = "cutline.service";

export interface TracingOptions {
  CUTLINE_TRACING: "off" | "otlp";
  OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  OTEL_SERVICE_NAME?: string | undefined;
}

export interface Tracing {
  readonly enabled: boolean;
  /** Exports the spans still buffered, then unregisters the provider. */
  shutdown(): Promise<void>;
}

let provider: NodeTracerProvider | undefined;
/** Set from the first line of startTracing, so a second start is refused even while the SDK loads. */
let starting = false;
const tracer = () => trace.getTracer("cutline");

/** Whether a provider is registered: every hook asks this first. */
export function tracingEnabled(): boolean {
  return provider !== undefined;
}

/**
 * Registers the process's tracer provider from the configuration (`exporter` replaces OTLP, for
 * tests). With CUTLINE_TRACING=off and no exporter it registers nothing and loads no SDK.
 */
export async function startTracing(config: TracingOptions, serviceName: string, exporter?: SpanExporter): Promise<Tracing> {
  if (config.CUTLINE_TRACING === "off" && exporter === undefined) return { enabled: false, shutdown: async () => {} };
  if (provider || starting) throw new Error("tracing is already started in this process; shut it down first");
  starting = true;
  let started: NodeTracerProvider;
  try {
    const [{ BatchSpanProcessor, NodeTracerProvider, SimpleSpanProcessor }, { resourceFromAttributes }, { ATTR_SERVICE_NAME }] = await Promise.all([
      import("@opentelemetry/sdk-trace-node"),
      import("@opentelemetry/resources"),
      import("@opentelemetry/semantic-conventions"),
    ]);
    const endpoint = (config.OTEL_EXPORTER_OTLP_ENDPOINT ?? OTLP_ENDPOINT_DEFAULT).replace(/\/+$/, "");
    // Tests read spans as they end; a collector gets them in batches, off the request path.
    const processor = exporter
      ? new SimpleSpanProcessor(exporter)
      : new BatchSpanProcessor(new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter({ url: `${endpoint}/v1/traces` }));
    started = new NodeTracerProvider({ resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.OTEL_SERVICE_NAME ?? serviceName }), spanProcessors: [processor] });
    // Also installs the AsyncLocalStorage context manager and the W3C trace-context propagator.
    started.register();
    provider = started;
  } finally {
    starting = false;
  }
  return {
    enabled: true,
    async shutdown() {
      if (provider !== started) return;
      provider = undefined;
      await started.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

const headersGetter: TextMapGetter<Headers> = { keys: (carrier) => [...carrier.keys()], get: (carrier, key) => carrier.get(key) ?? undefined };
const recordGetter: TextMapGetter<Readonly<Record<string, string>>> = { keys: (carrier) => Object.keys(carrier), get: (carrier, key) => carrier[key] };
const nodeHeadersGetter: TextMapGetter<NodeLike["headers"]> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    return Array.isArray(value) ? value[0] : value;
  },
};

interface NodeLike {
  method?: string | undefined;
  url?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
}

function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}

/** Runs `work` inside `span`, ending it with the outcome (an error marks it failed and is rethrown). */
async function within<T>(span: Span, parent: Context, work: () => Promise<T>): Promise<T> {
  try {
    const result = await context.with(trace.setSpan(parent, span), work);
    endSpan(span);
    return result;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}

/** `cutline.billing.v1.BillingService` → `billing`. */
function serviceOfTypeName(typeName: string): string {
  return typeName.split(".")[1] ?? typeName;
}

/**
 * Server side of every Connect RPC: spans the call (for a server stream, until its first message
 * is ready) inside the caller's trace.
 */
export function serverTracingInterceptor(): Interceptor {
  return (next) => async (request) => {
    if (!provider) return next(request);
    // Over the network the exchange's INTERNAL span (traceHttpExchange) is active and already continues the
    // caller's trace; in memory (single-node router transports) the headers carry the caller's.
    const active = context.active();
    const parent = trace.getSpan(active) ? active : propagation.extract(active, request.header, headersGetter);
    const span = tracer().startSpan(
      `${request.service.typeName}/${request.method.name}`,
      { kind: SpanKind.SERVER, attributes: { "rpc.system": "connect_rpc", "rpc.service": request.service.typeName, "rpc.method": request.method.name, [SERVICE_ATTRIBUTE]: serviceOfTypeName(request.service.typeName) } },
      parent,
    );
    return within(span, parent, () => next(request));
  };
}

/** Client side of every Connect call to another service: a client span whose context travels in the request headers. */
export function clientTracingInterceptor(): Interceptor {
  return (next) => async (request) => {
    if (!provider) return next(request);
    const parent = context.active();
    const span = tracer().startSpan(
      `${request.service.typeName}/${request.method.name}`,
      { kind: SpanKind.CLIENT, attributes: { "rpc.system": "connect_rpc", "rpc.service": request.service.typeName, "rpc.method": request.method.name } },
      parent,
    );
    propagation.inject(trace.setSpan(parent, span), request.header, { set: (carrier, key, value) => carrier.set(key, value) });
    return within(span, parent, () => next(request));
  };
}

interface ResponseLike {
  statusCode: number;
  once(event: "close", listener: () => void): unknown;
}

export interface HttpExchangeOptions<Request> {
  /** The paths of the server's RPCs: their exchange is INTERNAL, the RPC's own span (serverTracingInterceptor) is the SERVER span. */
  rpcPaths: ReadonlySet<string>;
  /** The route pattern the routes matched (`/v1/jobs/{id}`), read when the response closes. */
  routeOf(request: Request): string | undefined;
}

// A client must not mint span names with made-up methods (OpenTelemetry's HTTP conventions: _OTHER).
const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * Spans one inbound HTTP exchange of `service` (a REST route, or an RPC with its admission),
 * continuing the caller's trace, until the response closes; `handle` runs inside the span.
 * The name is the method and the matched route (`GET /v1/jobs/{id}`), never the raw path, which
 * carries ids and stays in url.path; an unmatched request is named by its method alone. An RPC's
 * exchange is INTERNAL: the RPC's span inside it is the one SERVER span of the call.
 * Runs `handle` directly when tracing is off.
 */
export function traceHttpExchange<Request extends NodeLike, T>(service: string, request: Request, response: ResponseLike, options: HttpExchangeOptions<Request>, handle: () => Promise<T>): Promise<T> {
  if (!provider) return handle();
  const parent = propagation.extract(context.active(), request.headers, nodeHeadersGetter);
  const path = (request.url ?? "/").split("?")[0]!;
  const method = HTTP_METHODS.has(request.method ?? "") ? request.method! : "_OTHER";
  const rpc = options.rpcPaths.has(path);
  const attributes = { "http.request.method": method, "url.path": path, [SERVICE_ATTRIBUTE]: service, ...(rpc ? { "http.route": path } : {}) };
  const span = tracer().startSpan(rpc ? `${method} ${path}` : method, { kind: rpc ? SpanKind.INTERNAL : SpanKind.SERVER, attributes }, parent);
  response.once("close", () => {
    const route = rpc ? undefined : options.routeOf(request);
    if (route !== undefined) {
      span.updateName(`${method} ${route}`);
      span.setAttribute("http.route", route);
    }
    span.setAttribute("http.response.status_code", response.statusCode);
    if (response.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  return context.with(trace.setSpan(parent, span), handle);
}

/** The active trace context as message headers (empty when tracing is off or no span is active). */
function injectedHeaders(headers: Readonly<Record<string, string>> | undefined, active: Context): Record<string, string> | undefined {
  const carrier: Record<string, string> = { ...headers };
  propagation.inject(active, carrier);
  return Object.keys(carrier).length === 0 ? undefined : carrier;
}

/** A producer span for one publish, its context in the message's headers. */
async function producing<T>(name: string, attributes: Record<string, string>, headers: Readonly<Record<string, string>> | undefined, publish: (headers: Record<string, string> | undefined) => Promise<T>): Promise<T> {
  const parent = context.active();
  const span = tracer().startSpan(name, { kind: SpanKind.PRODUCER, attributes }, parent);
  const active = trace.setSpan(parent, span);
  return within(span, parent, () => publish(injectedHeaders(headers, active)));
}

/** A consumer span for one delivery, child of the publisher's context from the message's headers. */
function consuming(name: string, attributes: Record<string, string | number>, headers: Readonly<Record<string, string>> | undefined, handle: () => Promise<void>): Promise<void> {
  const parent = headers ? propagation.extract(context.active(), headers, recordGetter) : context.active();
  const span = tracer().startSpan(name, { kind: SpanKind.CONSUMER, attributes }, parent);
  return within(span, parent, handle);
}

/** The work queue has one consuming service: inference pulls every task. */
const WORK_CONSUMER = "inference";

/** The queue with each enqueue and each delivery traced; the adapter carries the headers. */
export function tracedWorkQueue(queue: WorkQueue): WorkQueue {
  return {
    enqueue: (payload, options) =>
      provider
        ? producing(`work.${options.priority ?? "normal"} publish`, { "messaging.operation.type": "send", "messaging.message.id": options.id }, options.headers, (headers) =>
            queue.enqueue(payload, { ...options, headers }),
          )
        : queue.enqueue(payload, options),
    depth: () => queue.depth(),
    pending: () => queue.pending(),
    consume: (handler, options) =>
      queue.consume(
        (message: WorkMessage) =>
          provider
            ? consuming(
                `work.${message.priority} process`,
                { "messaging.operation.type": "process", "messaging.message.id": message.id, "messaging.message.delivery_count": message.deliveryCount, [SERVICE_ATTRIBUTE]: WORK_CONSUMER },
                message.headers,
                () => handler(message),
              )
            : handler(message),
        options,
      ),
    deadLetters: (options) => queue.deadLetters(options),
    close: () => queue.close(),
  };
}

/** The bus with each publish and each delivery traced; a durable name's first word names its service (`orchestrator-credits`). */
export function tracedEventBus(bus: EventBus): EventBus {
  return {
    publish: (subject, data, options = {}) =>
      provider
        ? producing(`${subject} publish`, { "messaging.operation.type": "send", "messaging.destination.name": subject }, options.headers, (headers) => bus.publish(subject, data, { ...options, headers }))
        : bus.publish(subject, data, options),
    subscribe: (handler, options) =>
      bus.subscribe(
        (event: BusEvent) =>
          provider
            ? consuming(
                `${event.subject} process`,
                {
                  "messaging.operation.type": "process",
                  "messaging.destination.name": event.subject,
                  "messaging.consumer.group.name": options.durableName,
                  [SERVICE_ATTRIBUTE]: options.durableName.split("-")[0]!,
                },
                event.headers,
                () => handler(event),
              )
            : handler(event),
        options,
      ),
    deadLetters: (options) => bus.deadLetters(options),
    close: () => bus.close(),
  };
}

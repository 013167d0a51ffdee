// The log side of tracing, kept apart from services/common/tracing.ts so the logger, which every
// service and script loads, depends on the OpenTelemetry API alone (a no-op until a provider is
// registered) and never on the SDK.
import { context, isSpanContextValid, trace } from "@opentelemetry/api";

/** trace_id and span_id of the active span, for every log line written inside one (pino's mixin); nothing when tracing is off. */
export function traceLogFields(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

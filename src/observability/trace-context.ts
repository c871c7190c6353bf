import { isSpanContextValid, trace, type SpanContext } from '@opentelemetry/api';

/** The span this code runs in, when tracing is on and there is one. */
export function activeSpanContext(): SpanContext | undefined {
  const context = trace.getActiveSpan()?.spanContext();
  return context && isSpanContextValid(context) ? context : undefined;
}

/** The trace this code runs in (32 hex digits), for the job events it writes; none when tracing is off. */
export function currentTraceId(): string | undefined {
  return activeSpanContext()?.traceId;
}

/**
 * A pino `mixin`: a line written inside a span names its trace and span, under the field names the
 * Temporal interceptors give workflow lines, so one search finds a job's lines from every process.
 */
export function traceLogBindings(): object {
  const context = activeSpanContext();
  return context ? { trace_id: context.traceId, span_id: context.spanId } : {};
}

import {
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Link,
  type Span,
  type SpanOptions,
} from '@opentelemetry/api';
import { activeSpanContext } from './trace-context.js';

/** Kiln's own spans; a no-op until tracing starts (and for good when it is off). */
const tracer = trace.getTracer('kiln');

function runInSpan<T>(name: string, options: SpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, options, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : undefined,
      });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Runs `work` in a child span of the current one; a failure marks the span and is thrown on. */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return runInSpan(name, { attributes }, work);
}

/**
 * Runs `work` as the root of a trace of its own, linked to the span it was started from. For work that
 * outlives its cause by far (a webhook delivery retries for a day): a child would stretch the cause's
 * trace over that day, where a link still leads from one to the other.
 */
export function inLinkedTrace<T>(
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const cause = activeSpanContext();
  const links: Link[] = cause ? [{ context: cause }] : [];
  return runInSpan(name, { root: true, links, attributes, kind: SpanKind.PRODUCER }, work);
}

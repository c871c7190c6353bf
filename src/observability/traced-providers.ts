import type { Span } from '@opentelemetry/api';
import { ProviderError } from '../providers/provider-error.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { ImageProvider, ProviderCallContext, TextProvider } from '../providers/provider.js';
import { inSpan } from './spans.js';
import { activeTracing } from './tracing.js';

/** The provider's own ids for the request, which its support and its dashboards know it by. */
const REQUEST_ID = 'kiln.provider.request_id';
const TASK_ID = 'kiln.provider.task_id';

/** A failed call's span says how it was classified, and which request of the provider's failed. */
function noteFailure(span: Span, error: unknown): void {
  if (!(error instanceof ProviderError)) return;
  span.setAttribute('kiln.failure_code', error.code);
  if (error.requestId) span.setAttribute(REQUEST_ID, error.requestId);
}

async function traced<T extends { requestId?: string }>(
  name: string,
  provider: { name: string },
  model: string,
  call: (span: Span) => Promise<T>,
): Promise<T> {
  return inSpan(name, { 'kiln.provider': provider.name, 'kiln.provider.model': model }, async (span) => {
    try {
      const answer = await call(span);
      if (answer.requestId) span.setAttribute(REQUEST_ID, answer.requestId);
      return answer;
    } catch (error) {
      noteFailure(span, error);
      throw error;
    }
  });
}

/** The task a submit-then-poll provider resumes or accepts goes on the span as soon as it is known. */
function notingTask(span: Span, context: ProviderCallContext): ProviderCallContext {
  if (context.resumeTaskId) {
    span.setAttributes({ [TASK_ID]: context.resumeTaskId, 'kiln.provider.resumed': true });
  }
  if (!context.onTaskAccepted) return context;
  return {
    ...context,
    onTaskAccepted: (taskId) => {
      span.setAttribute(TASK_ID, taskId);
      return context.onTaskAccepted!(taskId);
    },
  };
}

function tracedImage(provider: ImageProvider): ImageProvider {
  return {
    name: provider.name,
    models: provider.models,
    defaultModel: provider.defaultModel,
    generateImage: (input, context) =>
      traced('provider.generate_image', provider, input.model, (span) =>
        provider.generateImage(input, notingTask(span, context)),
      ),
  };
}

function tracedText(provider: TextProvider): TextProvider {
  return {
    name: provider.name,
    models: provider.models,
    defaultModel: provider.defaultModel,
    generateText: (input, context) =>
      traced('provider.generate_text', provider, input.model, () => provider.generateText(input, context)),
  };
}

/**
 * The registry with each call in a span of its own (provider, model, the provider's request id, a
 * failure's code), under the activity's; the registry itself when tracing is off.
 */
export function tracedProviders(registry: ProviderRegistry): ProviderRegistry {
  if (!activeTracing()) return registry;
  const images = new Map<string, ImageProvider>();
  const texts = new Map<string, TextProvider>();
  return {
    ...registry,
    image(name) {
      const provider = registry.image(name);
      if (provider && !images.has(name)) images.set(name, tracedImage(provider));
      return images.get(name);
    },
    text(name) {
      const provider = registry.text(name);
      if (provider && !texts.has(name)) texts.set(name, tracedText(provider));
      return texts.get(name);
    },
  };
}

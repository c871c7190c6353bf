import type Anthropic from '@anthropic-ai/sdk';
import { DEFAULT_ANTHROPIC_TEXT_MODELS } from '../config/index.js';
import { FailureCode } from '../jobs/job.js';
import { createAnthropicClient, type AnthropicProviderOptions } from './anthropic-client.js';
import { classifyAnthropicError } from './classify-anthropic-error.js';
import { ProviderError } from './provider-error.js';
import type {
  GeneratedText,
  TextCallContext,
  TextGenerationInput,
  TextProvider,
  TokenUsage,
} from './provider.js';
import { anthropicQuotaFrom } from './rate-limit-headers.js';

export interface AnthropicTextProviderOptions extends AnthropicProviderOptions {
  /** The first is the default. */
  models: readonly string[];
}

/**
 * Anthropic requires `max_tokens`. Kiln's API gives every text job a limit (1024 unless asked), so this
 * serves only a caller that names none, with the same default.
 */
const FALLBACK_MAX_TOKENS = 1024;

/** What the stream said by its end. `stopped`: its `message_stop` came, so the message is whole. */
interface StreamedMessage {
  text: string;
  stopReason: Anthropic.StopReason | null;
  stopped: boolean;
  messageId?: string;
  usage?: TokenUsage;
  /** The policy a refusal names, where it names one. */
  refusalCategory?: string;
}

/** Folds one stream event into the message so far; text deltas go on to the caller as they come. */
function apply(message: StreamedMessage, event: Anthropic.RawMessageStreamEvent, context: TextCallContext) {
  switch (event.type) {
    case 'message_start': {
      const { id, usage } = event.message;
      message.messageId = id;
      message.usage = { inputTokens: usage.input_tokens, outputTokens: usage.output_tokens };
      return;
    }
    case 'content_block_delta':
      if (event.delta.type !== 'text_delta') return;
      message.text += event.delta.text;
      context.onDelta(event.delta.text);
      return;
    case 'message_delta': {
      // Counts here are cumulative: they replace those of message_start.
      const { input_tokens: input, output_tokens: output } = event.usage;
      message.stopReason = event.delta.stop_reason;
      message.refusalCategory = event.delta.stop_details?.category ?? undefined;
      message.usage = { inputTokens: input ?? message.usage?.inputTokens ?? 0, outputTokens: output };
      return;
    }
    case 'message_stop':
      message.stopped = true;
      return;
    default:
      return;
  }
}

async function streamMessage(client: Anthropic, input: TextGenerationInput, context: TextCallContext) {
  const {
    data: stream,
    response,
    request_id: requestId,
  } = await client.messages
    .create(
      {
        model: input.model,
        max_tokens: input.maxTokens ?? FALLBACK_MAX_TOKENS,
        messages: [{ role: 'user', content: input.prompt }],
        stream: true,
      },
      { signal: context.signal },
    )
    .withResponse();
  const message: StreamedMessage = { text: '', stopReason: null, stopped: false };
  for await (const event of stream) apply(message, event, context);
  // The SDK ends a stream its signal aborted as if it were done: only the signal tells them apart.
  context.signal.throwIfAborted();
  return { message, headers: response.headers, requestId: requestId ?? message.messageId };
}

/** The streamed message as the caller's result, or the ProviderError it amounts to. */
function generatedText({
  message,
  headers,
  requestId,
}: Awaited<ReturnType<typeof streamMessage>>): GeneratedText {
  const failed = (code: FailureCode, why: string, retryable: boolean) =>
    new ProviderError(code, why, retryable, undefined, requestId);
  // A body that ends without message_stop was cut short (a proxy or the provider closed it cleanly
  // mid-reply): the text is a fragment, never a result.
  if (!message.stopped) {
    throw failed(FailureCode.providerUnavailable, 'the stream ended before the message finished', true);
  }
  if (message.stopReason === 'refusal') {
    const category = message.refusalCategory ? ` (${message.refusalCategory})` : '';
    throw failed(FailureCode.contentPolicy, `the model refused the request${category}`, false);
  }
  if (message.text.length === 0) throw failed(FailureCode.invalidOutput, 'the message had no text', true);
  return { text: message.text, quota: anthropicQuotaFrom(headers), requestId, usage: message.usage };
}

/** A TextProvider over Anthropic's Messages API, streamed: tokens reach the caller as they come. */
export function createAnthropicTextProvider(options: AnthropicTextProviderOptions): TextProvider {
  const client = createAnthropicClient(options);
  return {
    name: 'anthropic',
    models: options.models,
    defaultModel: options.models[0] ?? DEFAULT_ANTHROPIC_TEXT_MODELS[0],
    async generateText(input, context) {
      let streamed: Awaited<ReturnType<typeof streamMessage>>;
      try {
        streamed = await streamMessage(client, input, context);
      } catch (error) {
        // A cancellation is no failure of the provider's: the caller hears the abort's own reason.
        context.signal.throwIfAborted();
        throw classifyAnthropicError(error);
      }
      return generatedText(streamed);
    },
  };
}

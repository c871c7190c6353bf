import { APIError, APIUserAbortError, type OpenAI } from 'openai';
import { DEFAULT_OPENAI_TEXT_MODELS } from '../config/index.js';
import { FailureCode } from '../jobs/job.js';
import { classifyOpenAIError } from './classify-openai-error.js';
import { createOpenAIClient, type OpenAIProviderOptions } from './openai-client.js';
import { ProviderError } from './provider-error.js';
import type { TextCallContext, TextGenerationInput, TextProvider, TokenUsage } from './provider.js';
import { quotaFrom } from './rate-limit-headers.js';

export interface OpenAITextProviderOptions extends OpenAIProviderOptions {
  /** The first is the default. */
  models: readonly string[];
}

/**
 * An error the server sent inside an already open stream carries no HTTP status: the request itself was
 * fine, so it is the server's trouble, worth another attempt.
 */
function classifyStreamError(error: unknown): ProviderError {
  if (error instanceof APIError && error.status === undefined && !(error instanceof APIUserAbortError)) {
    return new ProviderError(FailureCode.providerUnavailable, error.message, true);
  }
  return classifyOpenAIError(error);
}

async function streamCompletion(
  client: ReturnType<typeof createOpenAIClient>,
  input: TextGenerationInput,
  context: TextCallContext,
) {
  const {
    data: stream,
    response,
    request_id: requestId,
  } = await client.chat.completions
    .create(
      {
        model: input.model,
        messages: [{ role: 'user', content: input.prompt }],
        max_completion_tokens: input.maxTokens,
        stream: true,
        // Without it a stream says nothing of the tokens it was billed for.
        stream_options: { include_usage: true },
      },
      { signal: context.signal },
    )
    .withResponse();
  return { ...(await readChunks(stream, context)), headers: response.headers, requestId };
}

/** The streamed reply: its text, handed on delta by delta, how it finished, and what it was billed. */
async function readChunks(stream: AsyncIterable<OpenAI.ChatCompletionChunk>, context: TextCallContext) {
  let text = '';
  let finishReason: string | null = null;
  let usage: TokenUsage | undefined;
  for await (const chunk of stream) {
    // The usage chunk comes last, after the finish reason, and has no choice in it.
    if (chunk.usage) {
      usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens };
    }
    const choice = chunk.choices[0];
    const delta = choice?.delta?.content;
    if (delta) {
      text += delta;
      context.onDelta(delta);
    }
    finishReason = choice?.finish_reason ?? finishReason;
  }
  return { text, finishReason, usage };
}

/** A TextProvider over the chat completions API, streamed: tokens reach the caller as they come. */
export function createOpenAITextProvider(options: OpenAITextProviderOptions): TextProvider {
  const client = createOpenAIClient(options);
  return {
    name: 'openai',
    models: options.models,
    defaultModel: options.models[0] ?? DEFAULT_OPENAI_TEXT_MODELS[0],
    async generateText(input, context) {
      let reply: Awaited<ReturnType<typeof streamCompletion>>;
      try {
        reply = await streamCompletion(client, input, context);
      } catch (error) {
        if (error instanceof APIUserAbortError || context.signal.aborted) throw error;
        throw classifyStreamError(error);
      }
      // The SDK ends an aborted stream as if it had finished: the abort is told as itself, not as a cut.
      context.signal.throwIfAborted();
      // A body that ends without a finish_reason was cut short (a proxy or the provider closed it
      // cleanly mid-reply): the text is a fragment, never a result.
      if (reply.finishReason === null) {
        throw new ProviderError(
          FailureCode.providerUnavailable,
          'the stream ended before the completion finished',
          true,
        );
      }
      if (reply.finishReason === 'content_filter') {
        throw new ProviderError(
          FailureCode.contentPolicy,
          'the completion was stopped by content filtering',
          false,
        );
      }
      if (reply.text.length === 0) {
        throw new ProviderError(FailureCode.invalidOutput, 'the completion was empty', true);
      }
      return {
        text: reply.text,
        quota: quotaFrom(reply.headers),
        requestId: reply.requestId ?? undefined,
        usage: reply.usage,
      };
    },
  };
}

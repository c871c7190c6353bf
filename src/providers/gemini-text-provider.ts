import type { GenerateContentResponseUsageMetadata, GoogleGenAI } from '@google/genai';
import { FailureCode } from '../jobs/job.js';
import { classifyGeminiError, refusalOf, type GeminiEnding } from './classify-gemini-error.js';
import { callConfig, createGeminiClient, type GeminiProviderOptions } from './gemini-client.js';
import { ProviderError } from './provider-error.js';
import type { TextCallContext, TextGenerationInput, TextProvider, TokenUsage } from './provider.js';

export interface GeminiTextProviderOptions extends GeminiProviderOptions {
  /** The first is the default. */
  models: readonly string[];
}

interface StreamedAnswer extends GeminiEnding {
  text: string;
  responseId?: string;
  usage?: TokenUsage;
}

/**
 * The tokens billed so far, as a chunk counts them: the last chunk's are the totals. Thinking is billed
 * as output, so its tokens count with the answer's.
 */
function usageOf(metadata: GenerateContentResponseUsageMetadata | undefined): TokenUsage | undefined {
  if (metadata?.promptTokenCount === undefined) return undefined;
  return {
    inputTokens: metadata.promptTokenCount,
    outputTokens: (metadata.candidatesTokenCount ?? 0) + (metadata.thoughtsTokenCount ?? 0),
  };
}

/**
 * Once the stream is open, anything but a classified answer is the stream breaking under us: a body cut
 * mid-event, a chunk that does not parse. The request was fine, so another attempt may well succeed.
 */
function classifyStreamError(error: unknown, headers: Headers | undefined): ProviderError {
  const failure = classifyGeminiError(error, headers);
  if (failure.code !== FailureCode.internal) return failure;
  return new ProviderError(
    FailureCode.providerUnavailable,
    `the Gemini stream broke: ${failure.message}`,
    true,
  );
}

async function streamAnswer(
  client: GoogleGenAI,
  input: TextGenerationInput,
  context: TextCallContext,
): Promise<StreamedAnswer> {
  const call = callConfig(context.signal);
  const answer: StreamedAnswer = { text: '' };
  let opened = false;
  try {
    const stream = await client.models.generateContentStream({
      model: input.model,
      contents: input.prompt,
      config: { ...call.config, maxOutputTokens: input.maxTokens },
    });
    opened = true;
    for await (const chunk of stream) {
      answer.responseId ??= chunk.responseId;
      answer.blockReason ??= chunk.promptFeedback?.blockReason;
      answer.usage = usageOf(chunk.usageMetadata) ?? answer.usage;
      const candidate = chunk.candidates?.[0];
      // Thought summaries come only when asked for (includeThoughts); they are never the answer.
      for (const part of candidate?.content?.parts ?? []) {
        if (!part.text || part.thought) continue;
        answer.text += part.text;
        context.onDelta(part.text);
      }
      answer.finishReason = candidate?.finishReason ?? answer.finishReason;
    }
  } catch (error) {
    // Our own abort is cancellation, not a provider failure; it also covers an abort mid-stream.
    context.signal.throwIfAborted();
    throw opened ? classifyStreamError(error, call.headers()) : classifyGeminiError(error, call.headers());
  }
  return answer;
}

/** The text of a whole answer; anything else is thrown, classified. */
function textOf(answer: StreamedAnswer): string {
  const refusal = refusalOf(answer);
  if (refusal) throw refusal;
  // The last chunk carries the finish reason: a body that ends without one was cut short (a proxy or the
  // provider closed it cleanly mid-answer), and its text is a fragment, never a result.
  if (answer.finishReason === undefined) {
    const message = 'the Gemini stream ended before the answer finished';
    throw new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  if (answer.text.length > 0) return answer.text;
  // Thinking counts against maxOutputTokens: a limit spent on it alone would be spent so again.
  if (answer.finishReason === 'MAX_TOKENS') {
    const message = 'Gemini spent the whole token limit before writing any text; a larger maxTokens may do';
    throw new ProviderError(FailureCode.invalidRequest, message, false);
  }
  throw new ProviderError(FailureCode.invalidOutput, 'the Gemini answer was empty', true);
}

/** A TextProvider over Gemini's `streamGenerateContent`: text reaches the caller as it comes. */
export function createGeminiTextProvider(options: GeminiTextProviderOptions): TextProvider {
  const [defaultModel] = options.models;
  if (defaultModel === undefined) throw new Error('a Gemini text provider needs at least one model');
  const client = createGeminiClient(options);
  return {
    name: 'gemini',
    models: options.models,
    defaultModel,
    async generateText(input, context) {
      const answer = await streamAnswer(client, input, context);
      return { text: textOf(answer), requestId: answer.responseId, usage: answer.usage };
    },
  };
}

import { APIUserAbortError, type OpenAI } from 'openai';
import type { ProviderCallContext } from './provider.js';
import { FailureCode, type ImageSize } from '../jobs/job.js';
import { classifyOpenAIError } from './classify-openai-error.js';
import { createOpenAIClient, type OpenAIProviderOptions } from './openai-client.js';
import { ProviderError } from './provider-error.js';
import type { ImageGenerationInput, ImageProvider } from './provider.js';
import { quotaFrom } from './rate-limit-headers.js';

/** Of the sizes Kiln offers, the ones each model accepts (the GPT image and DALL·E 3 models start at 1024). */
export const OPENAI_IMAGE_MODELS: Readonly<Record<string, readonly ImageSize[]>> = {
  'gpt-image-1': ['1024x1024'],
  'dall-e-3': ['1024x1024'],
  'dall-e-2': ['256x256', '512x512', '1024x1024'],
};

/** Partial images a GPT image model streams before the final one: its only progress signal. */
const PARTIAL_IMAGES = 3;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function requestBody(input: ImageGenerationInput) {
  // GPT image models always answer in base64 and reject `response_format`; DALL·E defaults to URLs.
  const isDallE = input.model.startsWith('dall-e');
  return {
    model: input.model,
    prompt: input.prompt,
    n: 1,
    size: input.size,
    ...(isDallE ? { response_format: 'b64_json' as const } : {}),
  };
}

/** An image as PNG bytes; a reply without one is a bad output that another attempt may fix. */
function pngFrom(encoded: string | undefined): Uint8Array {
  if (!encoded) throw new ProviderError(FailureCode.invalidOutput, 'OpenAI returned no image data', true);
  const bytes = Buffer.from(encoded, 'base64');
  if (!bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    throw new ProviderError(FailureCode.invalidOutput, 'OpenAI returned image data that is not a PNG', true);
  }
  return new Uint8Array(bytes);
}

interface Reply {
  encoded: string | undefined;
  headers: Headers;
}

/** DALL·E answers in one piece: nothing to report until it is done. */
async function generateAtOnce(
  client: OpenAI,
  input: ImageGenerationInput,
  signal: AbortSignal,
): Promise<Reply> {
  const { data, response } = await client.images.generate(requestBody(input), { signal }).withResponse();
  return { encoded: data.data?.[0]?.b64_json, headers: response.headers };
}

/** GPT image models stream partial images: each is a step of progress, the last event the image. */
async function generateStreaming(
  client: OpenAI,
  input: ImageGenerationInput,
  context: ProviderCallContext,
): Promise<Reply> {
  const body = { ...requestBody(input), stream: true as const, partial_images: PARTIAL_IMAGES };
  const { data: stream, response } = await client.images
    .generate(body, { signal: context.signal })
    .withResponse();
  for await (const event of stream) {
    if (event.type === 'image_generation.completed') {
      return { encoded: event.b64_json, headers: response.headers };
    }
    context.onProgress(((event.partial_image_index + 1) / (PARTIAL_IMAGES + 1)) * 100);
  }
  return { encoded: undefined, headers: response.headers };
}

/** An ImageProvider over OpenAI's images API. Throws ProviderError, or the abort error on cancellation. */
export function createOpenAIProvider(options: OpenAIProviderOptions): ImageProvider {
  const client = createOpenAIClient(options);
  return {
    name: 'openai',
    models: OPENAI_IMAGE_MODELS,
    defaultModel: 'gpt-image-1',
    async generateImage(input, context) {
      let reply: Reply;
      try {
        reply = input.model.startsWith('dall-e')
          ? await generateAtOnce(client, input, context.signal)
          : await generateStreaming(client, input, context);
      } catch (error) {
        // Our own abort is cancellation, not a provider failure; it also covers an abort mid-body.
        if (error instanceof APIUserAbortError || context.signal.aborted) throw error;
        throw classifyOpenAIError(error);
      }
      const bytes = pngFrom(reply.encoded);
      context.onProgress(100);
      return { bytes, contentType: 'image/png', quota: quotaFrom(reply.headers) };
    },
  };
}

import { APIUserAbortError, type OpenAI } from 'openai';
import type { AddressGuardOptions } from '../egress/address-guard.js';
import type { ProviderCallContext } from './provider.js';
import { FailureCode, type ImageSize } from '../jobs/job.js';
import { maxImageBytes } from '../outputs/verify-image.js';
import { classifyOpenAIError } from './classify-openai-error.js';
import { createOpenAIClient, type OpenAIProviderOptions } from './openai-client.js';
import { fetchImageUrl, type ImageUrlDownload } from './openai-image-url.js';
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

export interface OpenAIImageProviderOptions extends OpenAIProviderOptions {
  /**
   * Where an image answered as a URL (`data[].url`, as LiteLLM and other OpenAI-compatible servers may
   * send) may be fetched from; default: no private or loopback address, as for webhooks.
   */
  imageUrlGuard?: AddressGuardOptions;
}

/** The image in a reply: base64 bytes, or a URL to fetch them from. */
interface Reply {
  image: { b64_json?: string; url?: string } | undefined;
  headers: Headers;
  requestId: string | null;
}

async function imageBytes({ image }: Reply, download: ImageUrlDownload): Promise<Buffer | undefined> {
  if (image?.b64_json) return Buffer.from(image.b64_json, 'base64');
  return image?.url ? fetchImageUrl(image.url, download) : undefined;
}

/** The image as PNG bytes; a reply without one is a bad output that another attempt may fix. */
function pngFrom(bytes: Buffer | undefined): Uint8Array {
  if (!bytes) throw new ProviderError(FailureCode.invalidOutput, 'OpenAI returned no image data', true);
  if (!bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    throw new ProviderError(FailureCode.invalidOutput, 'OpenAI returned image data that is not a PNG', true);
  }
  return new Uint8Array(bytes);
}

/** DALL·E answers in one piece: nothing to report until it is done. */
async function generateAtOnce(
  client: OpenAI,
  input: ImageGenerationInput,
  signal: AbortSignal,
): Promise<Reply> {
  const { data, response, request_id } = await client.images
    .generate(requestBody(input), { signal })
    .withResponse();
  return { image: data.data?.[0], headers: response.headers, requestId: request_id };
}

/** GPT image models stream partial images: each is a step of progress, the last event the image. */
async function generateStreaming(
  client: OpenAI,
  input: ImageGenerationInput,
  context: ProviderCallContext,
): Promise<Reply> {
  const body = { ...requestBody(input), stream: true as const, partial_images: PARTIAL_IMAGES };
  const {
    data: stream,
    response,
    request_id: requestId,
  } = await client.images.generate(body, { signal: context.signal }).withResponse();
  for await (const event of stream) {
    if (event.type === 'image_generation.completed') {
      return { image: { b64_json: event.b64_json }, headers: response.headers, requestId };
    }
    context.onProgress(((event.partial_image_index + 1) / (PARTIAL_IMAGES + 1)) * 100);
  }
  return { image: undefined, headers: response.headers, requestId };
}

/** An ImageProvider over OpenAI's images API. Throws ProviderError, or the abort error on cancellation. */
export function createOpenAIProvider(options: OpenAIImageProviderOptions): ImageProvider {
  const client = createOpenAIClient(options);
  return {
    name: 'openai',
    models: OPENAI_IMAGE_MODELS,
    defaultModel: 'gpt-image-1',
    async generateImage(input, context) {
      let reply: Reply;
      let bytes: Uint8Array;
      try {
        reply = input.model.startsWith('dall-e')
          ? await generateAtOnce(client, input, context.signal)
          : await generateStreaming(client, input, context);
        bytes = pngFrom(
          await imageBytes(reply, {
            guard: options.imageUrlGuard ?? { allowPrivate: false },
            maxBytes: maxImageBytes(input.size),
            timeoutMs: options.timeoutMs,
            signal: context.signal,
          }),
        );
      } catch (error) {
        // Our own abort is cancellation, not a provider failure; it also covers an abort mid-body.
        if (error instanceof APIUserAbortError || context.signal.aborted) throw error;
        throw classifyOpenAIError(error);
      }
      context.onProgress(100);
      const requestId = reply.requestId ?? undefined;
      return { bytes, contentType: 'image/png', quota: quotaFrom(reply.headers), requestId };
    },
  };
}

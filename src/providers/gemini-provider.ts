import { Modality, type GenerateContentResponse, type GoogleGenAI } from '@google/genai';
import { FailureCode, type ImageSize } from '../jobs/job.js';
import { classifyGeminiError, refusalOf } from './classify-gemini-error.js';
import { callConfig, createGeminiClient, type GeminiProviderOptions } from './gemini-client.js';
import { ProviderError } from './provider-error.js';
import type { ImageGenerationInput, ImageProvider } from './provider.js';

/**
 * Gemini's image model draws a square at 1024x1024 and takes no other size: only the aspect ratio is
 * asked for. Imagen is not here: the client offers it (`generateImages`) only on Vertex AI.
 */
export const GEMINI_IMAGE_MODELS: Readonly<Record<string, readonly ImageSize[]>> = {
  'gemini-2.5-flash-image': ['1024x1024'],
};

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** How much of a text-only answer (the model describing instead of drawing) goes into the failure. */
const TEXT_IN_MESSAGE = 200;

async function generate(client: GoogleGenAI, input: ImageGenerationInput, signal: AbortSignal) {
  const call = callConfig(signal);
  try {
    return await client.models.generateContent({
      model: input.model,
      contents: input.prompt,
      config: {
        ...call.config,
        // Only an image: a text part beside it would be paid for and thrown away.
        responseModalities: [Modality.IMAGE],
        imageConfig: { aspectRatio: '1:1' },
        seed: input.seed,
      },
    });
  } catch (error) {
    // Our own abort is cancellation, not a provider failure; it also covers an abort mid-body.
    signal.throwIfAborted();
    throw classifyGeminiError(error, call.headers());
  }
}

/**
 * The image as PNG bytes. The Gemini API cannot be asked for a format (`outputMimeType` is Vertex-only),
 * so one that is not a PNG is a bad output that another attempt may fix, as is an answer with no image.
 */
function pngFrom(response: GenerateContentResponse): Uint8Array {
  const candidate = response.candidates?.[0];
  const refusal = refusalOf({
    blockReason: response.promptFeedback?.blockReason,
    finishReason: candidate?.finishReason,
  });
  if (refusal) throw refusal;
  const parts = candidate?.content?.parts ?? [];
  const image = parts.find((part) => part.inlineData?.data)?.inlineData;
  if (!image?.data) {
    const text = parts.flatMap((part) => (part.text ? [part.text] : [])).join('');
    const said = text ? `; it said: ${text.slice(0, TEXT_IN_MESSAGE)}` : '';
    throw new ProviderError(FailureCode.invalidOutput, `Gemini answered without an image${said}`, true);
  }
  const bytes = Buffer.from(image.data, 'base64');
  if (image.mimeType !== 'image/png' || !bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    const message = `Gemini returned ${image.mimeType ?? 'an image'} that is not a PNG`;
    throw new ProviderError(FailureCode.invalidOutput, message, true);
  }
  return new Uint8Array(bytes);
}

/**
 * An ImageProvider over Gemini's image model (`generateContent` asked for an image). One request, no
 * progress before the end. Throws ProviderError, or the abort's reason on cancellation.
 */
export function createGeminiProvider(options: GeminiProviderOptions): ImageProvider {
  const client = createGeminiClient(options);
  return {
    name: 'gemini',
    models: GEMINI_IMAGE_MODELS,
    defaultModel: 'gemini-2.5-flash-image',
    async generateImage(input, context) {
      const response = await generate(client, input, context.signal);
      const bytes = pngFrom(response);
      context.onProgress(100);
      return { bytes, contentType: 'image/png', requestId: response.responseId };
    },
  };
}

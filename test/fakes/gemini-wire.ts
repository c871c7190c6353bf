import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';

/**
 * The Gemini API's wire format, as `generativelanguage.googleapis.com/v1beta` speaks it: request bodies
 * (unknown fields refused, as the real API refuses them), answers, and the `google.rpc.Status` error
 * envelope.
 */

const part = z.object({ text: z.string() }).strict();

const generationConfig = z
  .object({
    maxOutputTokens: z.number().int().min(1).optional(),
    responseModalities: z
      .array(z.enum(['TEXT', 'IMAGE', 'AUDIO']))
      .min(1)
      .optional(),
    imageConfig: z
      .object({ aspectRatio: z.string().optional(), imageSize: z.enum(['1K', '2K', '4K']).optional() })
      .strict()
      .optional(),
    seed: z.number().int().optional(),
    temperature: z.number().optional(),
  })
  .strict();

export const generateContentBody = z
  .object({
    contents: z.array(z.object({ role: z.string().optional(), parts: z.array(part).min(1) })).min(1),
    generationConfig: generationConfig.optional(),
  })
  .strict();
export type GenerateContentBody = z.infer<typeof generateContentBody>;

/** What gemini-2.5-flash-image draws at each aspect ratio (its documented table); 1:1 unless asked. */
export const IMAGE_SIZES: Readonly<Record<string, readonly [number, number]>> = {
  '1:1': [1024, 1024],
  '2:3': [832, 1248],
  '3:2': [1248, 832],
  '3:4': [864, 1184],
  '4:3': [1184, 864],
  '4:5': [896, 1152],
  '5:4': [1152, 896],
  '9:16': [768, 1344],
  '16:9': [1344, 768],
  '21:9': [1536, 672],
};

/** The statuses the fake answers with, as Google names and words them. */
const STATUSES = {
  400: { status: 'INVALID_ARGUMENT', message: 'Request contains an invalid argument.' },
  403: { status: 'PERMISSION_DENIED', message: 'The caller does not have permission' },
  404: { status: 'NOT_FOUND', message: 'Requested entity was not found.' },
  429: {
    status: 'RESOURCE_EXHAUSTED',
    message: 'You exceeded your current quota, please check your plan and billing details.',
  },
  500: { status: 'INTERNAL', message: 'An internal error has occurred. Please retry or report it.' },
  503: { status: 'UNAVAILABLE', message: 'The model is overloaded. Please try again later.' },
} as const;
export type ErrorCode = keyof typeof STATUSES;

/** One `google.rpc.Status`, as the body of an error answer or an error event inside a stream. */
export function statusBody(code: ErrorCode, message?: string, details: object[] = []) {
  const known = STATUSES[code];
  return { error: { code, message: message ?? known.message, status: known.status, details } };
}

export const retryInfo = (seconds: number) => ({
  '@type': 'type.googleapis.com/google.rpc.RetryInfo',
  retryDelay: `${seconds}s`,
});

/** A wrong key is not a 401: Google answers 400 INVALID_ARGUMENT and says why in an ErrorInfo. */
export const API_KEY_INVALID = statusBody(400, 'API key not valid. Please pass a valid API key.', [
  {
    '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
    reason: 'API_KEY_INVALID',
    domain: 'googleapis.com',
    metadata: { service: 'generativelanguage.googleapis.com' },
  },
]);

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: object = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
  res.end(JSON.stringify(body));
}

/** The tokens an answer was billed for. In a stream every chunk has one, counting up to the totals. */
export interface UsageMetadata {
  promptTokenCount: number;
  candidatesTokenCount: number;
  /** Only from a model that thought before it answered. */
  thoughtsTokenCount?: number;
  totalTokenCount: number;
}

/** The fake's tokenizer: a word of the prompt is a token, and a prompt is at least one. */
export function promptTokens(prompt: string): number {
  return Math.max(1, prompt.split(/\s+/).filter(Boolean).length);
}

export function usageMetadata(prompt: number, candidates: number, thoughts = 0): UsageMetadata {
  return {
    promptTokenCount: prompt,
    candidatesTokenCount: candidates,
    ...(thoughts > 0 ? { thoughtsTokenCount: thoughts } : {}),
    totalTokenCount: prompt + candidates + thoughts,
  };
}

/** One answer or stream chunk: what every chunk carries besides its candidate. */
export function answer(model: string, responseId: string, fields: object, usage: UsageMetadata) {
  return { ...fields, usageMetadata: usage, modelVersion: model, responseId };
}

export function candidate(parts: object[] | undefined, finishReason?: string) {
  return {
    ...(parts ? { content: { parts, role: 'model' } } : {}),
    ...(finishReason ? { finishReason } : {}),
    index: 0,
  };
}

export const newResponseId = () => randomUUID().replaceAll('-', '').slice(0, 22);

/** A stream event as Google frames it: `data:` and CRLF line ends. */
export const sseEvent = (body: object) => `data: ${JSON.stringify(body)}\r\n\r\n`;

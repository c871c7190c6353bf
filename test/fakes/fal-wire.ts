import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/** The text-to-image endpoints the fake serves. */
export const FAKE_FAL_MODELS: ReadonlySet<string> = new Set(['fal-ai/flux/schnell', 'fal-ai/flux/dev']);

/** fal's named sizes, as FLUX takes them. */
const IMAGE_SIZE_PRESETS = {
  square_hd: [1024, 1024],
  square: [512, 512],
  portrait_4_3: [768, 1024],
  portrait_16_9: [576, 1024],
  landscape_4_3: [1024, 768],
  landscape_16_9: [1024, 576],
} as const;

const side = z.number().int().min(64).max(14142);

/** The FLUX inputs the fake reads, with the real endpoint's defaults. */
export const fluxInputSchema = z.object({
  prompt: z.string().min(1),
  image_size: z
    .union([
      z.enum(Object.keys(IMAGE_SIZE_PRESETS) as [keyof typeof IMAGE_SIZE_PRESETS]),
      z.object({ width: side, height: side }),
    ])
    .default('landscape_4_3'),
  seed: z.number().int().optional(),
  num_images: z.number().int().min(1).max(4).default(1),
  output_format: z.enum(['jpeg', 'png']).default('jpeg'),
  enable_safety_checker: z.boolean().default(true),
});
export type FluxInput = z.infer<typeof fluxInputSchema>;

export function sizeOf(input: FluxInput): { width: number; height: number } {
  if (typeof input.image_size === 'object') return input.image_size;
  const [width, height] = IMAGE_SIZE_PRESETS[input.image_size];
  return { width, height };
}

/** A model error, as fal's model APIs list them in a 422's `detail`. */
export function modelError(field: string, msg: string, type: string) {
  return { loc: ['body', field], msg, type, url: `https://docs.fal.ai/errors#${type}` };
}

/** The 422 of a submit whose input the endpoint's schema refuses. */
export function validationFailure(issues: readonly z.core.$ZodIssue[]) {
  return {
    detail: issues.map((issue) => ({
      loc: ['body', ...issue.path.map(String)],
      msg: issue.message,
      type: 'value_error',
    })),
  };
}

/** The ends a request can come to other than its image, as the result endpoint answers them. */
export const FAILED_RESULTS = {
  content_policy: [
    422,
    {
      detail: [
        modelError('prompt', 'The content was flagged by a content checker.', 'content_policy_violation'),
      ],
    },
  ],
  runner_error: [503, { detail: 'Runner disconnected unexpectedly', error_type: 'runner_disconnected' }],
  request_timeout: [504, { detail: 'Request timed out', error_type: 'request_timeout' }],
  canceled: [499, { detail: 'Request was cancelled by the client', error_type: 'client_cancelled' }],
} as const;

/** JPEG's start and end markers around noise: what FLUX sends unless PNG is asked for, and never a PNG. */
export function jpegLike(): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(64), Buffer.from([0xff, 0xd9])]);
}

const STEPS = 28;

/** fal's log entries for a runner `share` of the way through: a tqdm bar per step, as diffusers prints. */
export function runnerLogs(share: number, startedAt: number) {
  const steps = Math.floor(Math.min(1, share) * STEPS);
  return Array.from({ length: steps + 1 }, (_, step) => {
    const percent = String(Math.floor((step / STEPS) * 100)).padStart(3);
    const bar = '█'.repeat(Math.floor((step / STEPS) * 10)).padEnd(10, ' ');
    return {
      message: `${percent}%|${bar}| ${step}/${STEPS} [00:0${step % 10}<00:03,  8.21it/s]`,
      level: 'INFO',
      source: 'USER',
      timestamp: new Date(startedAt + step * 100).toISOString(),
    };
  });
}

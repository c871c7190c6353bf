import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  IMAGE_SIZES,
  JOB_KINDS,
  WEBHOOK_EVENTS,
  type GenerationRequest,
  type JobKind,
  type WebhookEvent,
} from '../jobs/job.js';
import { DEFAULT_WEBHOOK_EVENTS } from '../webhooks/webhook-event.js';
import { AddressRefused, resolveAllowedHost, type AddressGuardOptions } from '../egress/address-guard.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import { ApiError } from './api-error.js';
import { invalidRequest, validationError } from './invalid-request.js';

export const MAX_PROMPT_LENGTH = 4000;
const DEFAULT_SIZE = '1024x1024';
const DEFAULT_MAX_TOKENS = 1024;
const MAX_MAX_TOKENS = 16_384;
const MAX_DEADLINE_SECONDS = 7 * 24 * 3600;
const MAX_WEBHOOK_URL_LENGTH = 2048;
/** How long a submission waits for the webhook host's addresses; past it, each delivery's check decides. */
const WEBHOOK_LOOKUP_MS = 2000;

function hasNoUserinfo(url: string): boolean {
  const { username, password } = new URL(url);
  return username === '' && password === '';
}

/**
 * Where the job's events go. Whether its host may be reached is checked at submission
 * (`checkWebhookAddress`) and again by each attempt, which connects to exactly the addresses it checked.
 */
const webhookSchema = z
  .object({
    url: z
      // `abort`: the refinement parses the URL again, which throws on one this check refused.
      .url({ protocol: /^https?$/, normalize: true, abort: true })
      .max(MAX_WEBHOOK_URL_LENGTH)
      // A password here would be stored with the job and sent on every attempt; deliveries are signed.
      .refine(hasNoUserinfo, 'must not contain a user name or password; verify the signature instead')
      .describe(
        'http or https, without a user name or password, and not a private or loopback address unless ' +
          'the deployment allows them; redirects are not followed',
      ),
    events: z
      .array(z.enum(WEBHOOK_EVENTS))
      .min(1)
      .max(WEBHOOK_EVENTS.length)
      .optional()
      .describe('Statuses to be told about, and `progress`; default: the terminal statuses'),
  })
  .strict();

/** Body of `POST /v1/generations`. Unknown fields are rejected so typos do not pass silently. */
export const generationBodySchema = z
  .object({
    kind: z.enum(JOB_KINDS),
    prompt: z.string().trim().min(1).max(MAX_PROMPT_LENGTH),
    provider: z.string().min(1).max(64).optional(),
    model: z.string().min(1).max(128).optional(),
    params: z
      .object({
        size: z.enum(IMAGE_SIZES).optional().describe('Image jobs only. Default 1024x1024'),
        maxTokens: z
          .number()
          .int()
          .min(1)
          .max(MAX_MAX_TOKENS)
          .optional()
          .describe(`Text jobs only: the completion's token limit. Default ${DEFAULT_MAX_TOKENS}`),
      })
      .strict()
      .optional(),
    deadline: z
      .object({
        startWithinSeconds: z.number().int().min(1).max(MAX_DEADLINE_SECONDS).optional(),
        finishWithinSeconds: z.number().int().min(1).max(MAX_DEADLINE_SECONDS).optional(),
      })
      .strict()
      .optional(),
    webhook: webhookSchema.optional(),
  })
  .strict();

/** Printable ASCII, as payment APIs accept; long enough for a UUID or a hash. */
export const idempotencyKeySchema = z.string().regex(/^[\x21-\x7e]{1,255}$/);

export function parseIdempotencyKey(header: string | undefined): string {
  if (header === undefined)
    throw new ApiError('missing_idempotency_key', 'Idempotency-Key header is required');
  if (!idempotencyKeySchema.safeParse(header).success) {
    throw new ApiError('invalid_idempotency_key', 'Idempotency-Key must be 1–255 printable ASCII characters');
  }
  return header;
}

/** The model asked for (or the provider's default), if the provider makes that kind with it. */
function modelFor(providers: ProviderRegistry, kind: JobKind, provider: string, model?: string): string {
  if (!providers.names(kind).includes(provider)) {
    throw new ApiError('unknown_provider', `provider ${provider} makes no ${kind} jobs here`, {
      field: 'provider',
      available: providers.names(kind),
    });
  }
  const resolved = providers.resolveModel(kind, provider, model);
  if (!resolved) {
    throw new ApiError('unknown_model', `provider ${provider} has no ${kind} model ${model}`, {
      field: 'model',
      available: providers.models(kind, provider),
    });
  }
  return resolved;
}

/** Size for images, token limit for text: each kind refuses the other's parameter. */
function kindParams(
  providers: ProviderRegistry,
  kind: JobKind,
  provider: string,
  model: string,
  params: z.infer<typeof generationBodySchema>['params'] = {},
): Pick<GenerationRequest, 'size' | 'maxTokens'> {
  const foreign = kind === 'text' ? 'size' : 'maxTokens';
  if (params[foreign] !== undefined) {
    throw invalidRequest({ field: `params.${foreign}`, message: `not a parameter of ${kind} jobs` });
  }
  if (kind === 'text') return { size: null, maxTokens: params.maxTokens ?? DEFAULT_MAX_TOKENS };
  const size = params.size ?? DEFAULT_SIZE;
  const sizes = providers.image(provider)?.models[model] ?? [];
  if (!sizes.includes(size)) {
    throw new ApiError('unsupported_size', `model ${model} cannot make ${size} images`, {
      field: 'params.size',
      available: sizes,
    });
  }
  return { size, maxTokens: null };
}

/** Validates a body and fills in defaults, so that equal requests compare equal. */
export function parseGenerationRequest(
  body: unknown,
  providers: ProviderRegistry,
  defaultProvider: string,
): GenerationRequest {
  const parsed = generationBodySchema.safeParse(body);
  if (!parsed.success) throw validationError(parsed.error, '(body)');
  const { kind, prompt, params, deadline, webhook } = parsed.data;
  const provider = parsed.data.provider ?? defaultProvider;
  const model = modelFor(providers, kind, provider, parsed.data.model);
  return {
    kind,
    prompt,
    provider,
    model,
    ...kindParams(providers, kind, provider, model, params),
    ...(deadline ? { deadline } : {}),
    ...(webhook ? { webhook: { url: webhook.url, events: webhookEvents(webhook.events) } } : {}),
  };
}

/** Sorted and without repeats, so that the same filter always fingerprints the same. */
function webhookEvents(events: readonly WebhookEvent[] = DEFAULT_WEBHOOK_EVENTS): WebhookEvent[] {
  return WEBHOOK_EVENTS.filter((event) => events.includes(event));
}

async function refusalOf(url: URL, guard: AddressGuardOptions): Promise<AddressRefused | undefined> {
  try {
    await resolveAllowedHost(url, guard);
    return undefined;
  } catch (error) {
    return error instanceof AddressRefused ? error : undefined;
  }
}

/**
 * Refuses a webhook whose host is, or resolves to, an address deliveries may not reach, so that the
 * client hears it now rather than from deliveries that can never succeed. A name that does not resolve
 * (yet), or not in time, is let through: each delivery checks again, and that check is the one that
 * counts, since what a name resolves to can change.
 */
export async function checkWebhookAddress(
  request: GenerationRequest,
  guard: AddressGuardOptions,
): Promise<void> {
  if (!request.webhook || guard.allowPrivate) return;
  const refusal = await Promise.race([
    refusalOf(new URL(request.webhook.url), guard),
    sleep(WEBHOOK_LOOKUP_MS, undefined, { ref: false }),
  ]);
  if (refusal) {
    throw invalidRequest({
      field: 'webhook.url',
      message: `${refusal.message}, which webhooks may not reach`,
    });
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  BATCH_MISSES,
  BatchMiss,
  CACHE_MODES,
  SERVICE_TIERS,
  ServiceTier,
  DEFAULT_MAX_TOKENS,
  IMAGE_SIZES,
  MAX_TOKENS_LIMIT,
  WEBHOOK_EVENTS,
  type GenerationRequest,
  type ImageSize,
  type JobKind,
  type ProviderChoice,
  type WebhookEvent,
} from '../jobs/job.js';
import { DEFAULT_WEBHOOK_EVENTS } from '../webhooks/webhook-event.js';
import { AddressRefused, resolveAllowedHost, type AddressGuardOptions } from '../egress/address-guard.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import { ApiError } from './api-error.js';
import { invalidRequest, validationError } from './invalid-request.js';
import { WEBHOOK_URL } from './webhook-url.js';

export const MAX_PROMPT_LENGTH = 4000;
export const DEFAULT_SIZE: ImageSize = '1024x1024';
const MAX_DEADLINE_SECONDS = 7 * 24 * 3600;
const MAX_WEBHOOK_URL_LENGTH = 2048;
/** How long a submission waits for the webhook host's addresses; past it, each delivery's check decides. */
const WEBHOOK_LOOKUP_MS = 2000;

/**
 * Where the job's events go. Whether its host may be reached is checked at submission
 * (`checkWebhookAddress`) and again by each attempt, which connects to exactly the addresses it checked.
 */
export const webhookSchema = z
  .object({
    url: z
      .string()
      // Checked as sent, before the parse normalizes it: what the document's `maxLength` says.
      .max(MAX_WEBHOOK_URL_LENGTH)
      // No user name or password either: one would be stored with the job and sent on every attempt.
      .regex(WEBHOOK_URL, 'must be an http or https URL without a user name or password')
      .pipe(z.url({ protocol: /^https?$/, normalize: true }))
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

/**
 * Not only whitespace: a character outside String#trim's whitespace, spelled out rather than `\S` so that
 * every regex engine that reads the document agrees (Python's `\s` also takes U+001C–U+001F and U+0085,
 * JavaScript's also U+FEFF).
 */
const NOT_ONLY_WHITESPACE = /[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/;

/** Counted from submission. */
export const deadlineSchema = z
  .object({
    startWithinSeconds: z
      .number()
      .int()
      .min(1)
      .max(MAX_DEADLINE_SECONDS)
      .optional()
      .describe('The provider call must have started by then, or the job ends `expired`'),
    finishWithinSeconds: z
      .number()
      .int()
      .min(1)
      .max(MAX_DEADLINE_SECONDS)
      .optional()
      .describe('The job must have succeeded by then, or it fails `deadline_exceeded`'),
  })
  .strict();

/** A job's later deadlines, counted from submission as at submit: at least one of them. */
export const deadlineExtensionSchema = deadlineSchema.refine(
  (deadline) => Object.keys(deadline).length > 0,
  'name at least one deadline to extend',
);

/** What both kinds take. */
const requestFields = {
  // The limit is on what was sent, before the trim, in code points (zod's `max` counts UTF-16 units):
  // what the document's `maxLength` means.
  prompt: z
    .string()
    .refine((prompt) => [...prompt].length <= MAX_PROMPT_LENGTH, `at most ${MAX_PROMPT_LENGTH} characters`)
    .regex(NOT_ONLY_WHITESPACE, 'must not be only whitespace')
    .trim()
    .meta({ maxLength: MAX_PROMPT_LENGTH }),
  provider: z.string().min(1).max(64).optional(),
  model: z.string().min(1).max(128).optional(),
  deadline: deadlineSchema.optional(),
  webhook: webhookSchema.optional(),
  cache: z
    .enum(CACHE_MODES)
    .optional()
    .describe(
      "`reuse`: an identical request in flight is joined (one provider call serves both), or the stored result of one that succeeded recently serves this one at once, at the deployment's cache price; `off`: a provider is called. Default: the plan's",
    ),
};

/** A strict object whose unknown keys are refused as not being parameters of `kind` jobs. */
const paramsOf = <Shape extends z.ZodRawShape>(kind: 'image' | 'text', shape: Shape) =>
  z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `not a parameter of ${kind} jobs` : undefined),
  });

/** The most providers a request may name to fall back on. */
export const MAX_FALLBACKS = 5;

/** A request's own fallback chain, or `false` for none; each entry takes its kind's parameters. */
const fallbackOf = <Shape extends z.ZodRawShape>(kind: 'image' | 'text', shape: Shape) =>
  z
    .union([
      z.literal(false),
      z
        .array(
          z.strictObject({
            provider: z.string().min(1).max(64),
            model: z.string().min(1).max(128).optional(),
            ...shape,
          }),
        )
        .min(1)
        .max(MAX_FALLBACKS),
    ])
    .optional()
    .describe(
      `Providers to fall back on, in order, when this one cannot serve the job in time (at most ${MAX_FALLBACKS}); ` +
        '`false` for none. Default: the chain the deployment configures for provider:model',
    );

const imageParamsSchema = paramsOf('image', {
  size: z.enum(IMAGE_SIZES).optional().describe(`Default ${DEFAULT_SIZE}`),
});

/** Unknown fields are rejected, in both kinds, so typos do not pass silently. */
export const imageRequestSchema = z
  .object({
    kind: z.literal('image'),
    ...requestFields,
    params: imageParamsSchema.optional(),
    fallback: fallbackOf('image', { size: z.enum(IMAGE_SIZES).optional() }),
  })
  .strict();

export const textRequestSchema = z
  .object({
    kind: z.literal('text'),
    ...requestFields,
    params: paramsOf('text', {
      maxTokens: z
        .number()
        .int()
        .min(1)
        .max(MAX_TOKENS_LIMIT)
        .optional()
        .describe(`The completion's token limit. Default ${DEFAULT_MAX_TOKENS}`),
    }).optional(),
    fallback: fallbackOf('text', { maxTokens: z.number().int().min(1).max(MAX_TOKENS_LIMIT).optional() }),
    tier: z
      .enum(SERVICE_TIERS)
      .optional()
      .describe(
        '`batch`: the job is a line in a provider batch, done within a day at the batch price (models the deployment prices for batches only); `standard`: a call of its own now. Default `standard`',
      ),
    onBatchMiss: z
      .enum(BATCH_MISSES)
      .optional()
      .describe(
        'Batch jobs only: what the job does when the batch tier cannot serve it in time (its finish deadline is nearer than a batch may take, or its batch ended with its line unrun): `standard`, a call of its own at the standard price; `fail`, it fails `deadline_exceeded` and pays nothing. Default `standard`',
      ),
  })
  .strict();

/** Body of `POST /v1/generations`: an image job takes `size`, a text job `maxTokens`, neither the other's. */
export const generationBodySchema = z.discriminatedUnion('kind', [imageRequestSchema, textRequestSchema]);

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

/**
 * The model asked for (or the provider's default), if the provider makes that kind with it. `at`: where
 * the provider was named, as a refusal's field path (`''` at the top, `fallback[0].` in a fallback).
 */
function modelFor(
  providers: ProviderRegistry,
  kind: JobKind,
  provider: string,
  model: string | undefined,
  at = '',
): string {
  if (!providers.names(kind).includes(provider)) {
    throw new ApiError('unknown_provider', `provider ${provider} makes no ${kind} jobs here`, {
      field: `${at}provider`,
      available: providers.names(kind),
    });
  }
  const resolved = providers.resolveModel(kind, provider, model);
  if (!resolved) {
    throw new ApiError('unknown_model', `provider ${provider} has no ${kind} model ${model}`, {
      field: `${at}model`,
      available: providers.models(kind, provider),
    });
  }
  return resolved;
}

/** The image size asked for (or the default), if the model makes it; `field` names it in a refusal. */
function imageSize(
  providers: ProviderRegistry,
  provider: string,
  model: string,
  size = DEFAULT_SIZE,
  field = 'params.size',
): ImageSize {
  const sizes = providers.image(provider)?.models[model] ?? [];
  if (!sizes.includes(size)) {
    throw new ApiError('unsupported_size', `model ${model} cannot make ${size} images`, {
      field,
      available: sizes,
    });
  }
  return size;
}

type GenerationBody = z.output<typeof generationBodySchema>;

/** A request's own fallbacks, checked as its provider is, with the request's parameters where unset. */
function fallbackChoices(
  providers: ProviderRegistry,
  body: GenerationBody,
  primary: Pick<ProviderChoice, 'size' | 'maxTokens'>,
): ProviderChoice[] | false | undefined {
  if (!body.fallback) return body.fallback;
  const choices: ProviderChoice[] = [];
  for (const [index, entry] of body.fallback.entries()) {
    const at = `fallback[${index}].`;
    const model = modelFor(providers, body.kind, entry.provider, entry.model, at);
    if (body.kind === 'image') {
      const asked = ('size' in entry ? entry.size : undefined) ?? primary.size ?? DEFAULT_SIZE;
      const size = imageSize(providers, entry.provider, model, asked, `${at}size`);
      choices.push({ provider: entry.provider, model, size, maxTokens: null });
    } else {
      const maxTokens = ('maxTokens' in entry ? entry.maxTokens : undefined) ?? primary.maxTokens;
      choices.push({ provider: entry.provider, model, size: null, maxTokens });
    }
  }
  return choices;
}

/** Validates a body and fills in defaults, so that equal requests compare equal. */
export function parseGenerationRequest(
  body: unknown,
  providers: ProviderRegistry,
  defaultProvider: string,
): GenerationRequest {
  const parsed = generationBodySchema.safeParse(body);
  if (!parsed.success) throw validationError(parsed.error, '(body)');
  const { kind, prompt, deadline, webhook, cache } = parsed.data;
  const provider = parsed.data.provider ?? defaultProvider;
  const model = modelFor(providers, kind, provider, parsed.data.model);
  const params =
    parsed.data.kind === 'image'
      ? { size: imageSize(providers, provider, model, parsed.data.params?.size), maxTokens: null }
      : { size: null, maxTokens: parsed.data.params?.maxTokens ?? DEFAULT_MAX_TOKENS };
  const fallback = fallbackChoices(providers, parsed.data, params);
  const tier = parsed.data.kind === 'text' ? batchTierOf(providers, provider, model, parsed.data) : {};
  return {
    kind,
    prompt,
    provider,
    model,
    ...params,
    ...(deadline ? { deadline } : {}),
    ...(webhook ? { webhook: { url: webhook.url, events: webhookEvents(webhook.events) } } : {}),
    ...(fallback === undefined ? {} : { fallback }),
    ...(cache === undefined ? {} : { cache }),
    ...tier,
  };
}

/**
 * A batch request's tier and miss policy (the default filled in, so that equal requests compare equal),
 * if its model is offered in batches; nothing for the standard tier.
 */
function batchTierOf(
  providers: ProviderRegistry,
  provider: string,
  model: string,
  body: Pick<z.output<typeof textRequestSchema>, 'tier' | 'onBatchMiss'>,
): Pick<GenerationRequest, 'tier' | 'onBatchMiss'> {
  if (body.tier !== ServiceTier.batch) {
    if (body.onBatchMiss === undefined) return {};
    throw invalidRequest({ field: 'onBatchMiss', message: 'only for `tier: "batch"` jobs' });
  }
  if (!providers.batchModels(provider).includes(model)) {
    throw invalidRequest({
      field: 'tier',
      message: `${provider}/${model} is not offered in batches here (offered: ${batchOffer(providers)})`,
    });
  }
  return { tier: ServiceTier.batch, onBatchMiss: body.onBatchMiss ?? BatchMiss.standard };
}

function batchOffer(providers: ProviderRegistry): string {
  const offered = providers
    .names('text')
    .flatMap((name) => providers.batchModels(name).map((model) => `${name}/${model}`));
  return offered.join(', ') || 'none';
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

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_ANTHROPIC_TEXT_MODELS, DEFAULT_OPENAI_TEXT_MODELS, type PayloadKey } from './policies.js';

/** Embedded defaults for `npm start` keep their state here (git-ignored). */
export const DATA_DIR = path.resolve(fileURLToPath(new URL('../../.data', import.meta.url)));

const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === '' ? undefined : value));
/** A JSON value in one variable, checked against `schema`. */
function jsonValue<T extends z.ZodType>(schema: T) {
  return z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'not valid JSON' });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

const planSchema = z.object({
  /** Jobs of one user admitted at once; the rest wait in submission order. */
  maxRunning: z.number().int().min(1),
  /** Share of a busy provider relative to other plans (Temporal fairness weight). */
  weight: z.number().positive().max(1000),
  /** Whether its users' requests that say nothing of `cache` may reuse identical ones. Default `off`. */
  cache: z.enum(['reuse', 'off']).default('off'),
});
export type Plan = z.infer<typeof planSchema>;

const providerLimitSchema = z.object({
  /** Calls per minute across the whole fleet. */
  rpm: z.number().positive(),
  /** Calls in flight across the whole fleet. */
  concurrency: z.number().int().min(1),
});
export type ProviderLimit = z.infer<typeof providerLimitSchema>;

/** `WIDTHxHEIGHT`; whether a provider makes it is checked against the providers, at start. */
const imageSize = z.string().regex(/^[0-9]+x[0-9]+$/, 'not WIDTHxHEIGHT');

/** One equivalent a `provider:model` falls back on, and how the request's parameters map to it. */
const fallbackEntrySchema = z.strictObject({
  provider: z.string().min(1),
  model: z.string().min(1),
  /** The size asked of this entry for each size the request asks for; unmapped sizes pass as they are. */
  sizes: z.record(imageSize, imageSize).optional(),
  /** This entry's ceiling on the request's `maxTokens`. */
  maxTokens: z.number().int().min(1).optional(),
});
export type FallbackEntry = z.infer<typeof fallbackEntrySchema>;

const perMillion = {
  inputPerMillion: z.number().int().min(0),
  outputPerMillion: z.number().int().min(0),
};

/**
 * A text model's prices from a day on, in credits per million tokens: the standard tier's, and the
 * batch tier's where the model is offered in batches.
 */
const tokenPriceSchema = z.strictObject({
  /** The day (UTC, `YYYY-MM-DD`) these prices start to apply: the price table's version. */
  since: z.iso.date(),
  ...perMillion,
  batch: z.strictObject(perMillion).optional(),
});
export type TokenPrice = z.infer<typeof tokenPriceSchema>;
/** `provider:model` → its prices over time, in any order. */
export type TokenPriceTable = Readonly<Record<string, readonly TokenPrice[]>>;

const PAYLOAD_KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** 32 bytes in standard base64, as `openssl rand -base64 32` prints them. */
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** `id:base64key,…`; an issue names the entry by position, never its key. */
const payloadKeys = z.string().transform((text, ctx): PayloadKey[] => {
  const keys = text.split(',').map((entry, index) => {
    const separator = entry.indexOf(':');
    const id = entry.slice(0, separator).trim();
    const key = entry.slice(separator + 1).trim();
    if (separator < 0 || !PAYLOAD_KEY_ID.test(id)) {
      ctx.addIssue({
        code: 'custom',
        message: `entry ${index + 1}: not id:key (id: 1-64 of A-Z a-z 0-9 . _ -)`,
      });
    } else if (!BASE64_KEY.test(key)) {
      ctx.addIssue({ code: 'custom', message: `key ${id}: not 32 bytes of base64` });
    }
    return { id, key: Buffer.from(key, 'base64') };
  });
  const ids = keys.map(({ id }) => id);
  const repeated = ids.find((id, index) => ids.indexOf(id) !== index);
  if (repeated !== undefined) ctx.addIssue({ code: 'custom', message: `key id ${repeated} is repeated` });
  return keys;
});

/** Comma-separated origins (`scheme://host[:port]`, nothing after). */
const origins = z
  .string()
  .transform((value) => value.split(',').map((origin) => origin.trim()))
  .pipe(
    z.array(
      z.string().refine((origin) => URL.canParse(origin) && new URL(origin).origin === origin, {
        message: 'not an origin (scheme://host[:port])',
      }),
    ),
  );

/** Model names, comma-separated; the first is the default. */
const modelList = (defaults: readonly string[]) =>
  z
    .string()
    .transform((value) => value.split(',').map((model) => model.trim()))
    .pipe(z.array(z.string().min(1).max(128)).min(1))
    .default([...defaults]);

const booleanFlag = z
  .enum(['true', 'false', '1', '0'])
  .transform((value) => value === 'true' || value === '1');

/** Every provider Kiln has an adapter for; src/providers/configured-providers.ts offers them. */
const PROVIDER_NAMES = ['local', 'openai', 'replicate', 'anthropic', 'fal', 'gemini'] as const;

/** Every variable Kiln reads, with its default. */
export const envSchema = z.object({
  /** HTTP port of the API. Default 3000. */
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Interface the API listens on. Default 127.0.0.1. */
  HOST: z.string().default('127.0.0.1'),
  /** host:port of a Temporal frontend. Unset: `npm start` runs a dev server, api/worker use localhost:7233. */
  TEMPORAL_ADDRESS: optionalString,
  /** The dev server `npm start` runs without TEMPORAL_ADDRESS: its frontend and Web UI ports. */
  TEMPORAL_DEV_PORT: z.coerce.number().int().min(1).max(65535).default(7233),
  TEMPORAL_DEV_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
  /** Where `npm start` keeps its state: the embedded cluster, the dev server's SQLite, results. Default `.data`. */
  KILN_DATA_DIR: z.string().default(DATA_DIR),
  /** The embedded PostgreSQL's port (no DATABASE_URL): off the usual 5432, so a system server there is left alone. */
  EMBEDDED_POSTGRES_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  /** Default `default`. */
  TEMPORAL_NAMESPACE: z.string().default('default'),
  /** Task queue of the generation workflows and activities. Default `kiln-generations`. */
  TEMPORAL_TASK_QUEUE: z.string().default('kiln-generations'),
  /**
   * Worker Versioning: the Worker Deployment this worker belongs to, and its build (both, or neither).
   * Set, the worker takes only the tasks of workflows of its own version, and of none until the version
   * is made current (`npm run deployment -- promote`). Unset: unversioned, deploys rely on `patched()`.
   */
  WORKER_DEPLOYMENT_NAME: z.string().min(1).max(200).optional(),
  WORKER_BUILD_ID: z.string().min(1).max(200).optional(),
  /**
   * Keys Temporal payloads (workflow and activity inputs and results) are encrypted with, as
   * `id:base64key,…` (AES-256: 32 bytes each); the first encrypts, every one decrypts. Unset: payloads
   * are stored in plaintext.
   */
  PAYLOAD_ENCRYPTION_KEYS: optionalString.pipe(payloadKeys.optional()),
  /** Temporal Web UIs that may call `/codec`, comma-separated. Default: the dev server's and compose's UI. */
  CODEC_ALLOWED_ORIGINS: origins.default(['http://localhost:8233', 'http://127.0.0.1:8233']),
  /** postgres:// URL. Unset: the embedded PostgreSQL (`.data/postgres`, port 54329) that `npm start` runs. */
  DATABASE_URL: optionalString,
  /** `filesystem` (default, under `.data/objects`) or `s3`. */
  STORAGE_DRIVER: z.enum(['filesystem', 's3']).default('filesystem'),
  /** Default: `objects` in KILN_DATA_DIR. */
  STORAGE_DIR: optionalString,
  S3_BUCKET: z.string().default('kiln-results'),
  /** Endpoint of an S3-compatible server (MinIO, …); unset for AWS. */
  S3_ENDPOINT: optionalString,
  S3_REGION: z.string().default('us-east-1'),
  S3_ACCESS_KEY_ID: optionalString,
  S3_SECRET_ACCESS_KEY: optionalString,
  /** Path-style URLs, which MinIO needs. Default true. */
  S3_FORCE_PATH_STYLE: booleanFlag.default(true),
  /** Provider used when a request names none; `openai` and `replicate` need their key. Default `local`. */
  DEFAULT_PROVIDER: z.enum(PROVIDER_NAMES).default('local'),
  /** Enables the `openai` provider. */
  OPENAI_API_KEY: optionalString,
  /** Any OpenAI-compatible server. Default: OpenAI's own. */
  OPENAI_BASE_URL: optionalString,
  /**
   * Let the image URLs an OpenAI-compatible server answers with (instead of `b64_json`) be on private,
   * loopback or link-local addresses: a self-hosted server that serves its own images. Default false.
   */
  OPENAI_IMAGE_URLS_ALLOW_PRIVATE: booleanFlag.default(false),
  /** Chat models offered for text jobs, comma-separated; the first is the default. */
  OPENAI_TEXT_MODELS: z
    .string()
    .transform((value) => value.split(',').map((model) => model.trim()))
    .pipe(z.array(z.string().min(1).max(128)).min(1))
    .default([...DEFAULT_OPENAI_TEXT_MODELS]),
  /** Enables the `anthropic` text provider (Claude, over the Messages API). */
  ANTHROPIC_API_KEY: optionalString,
  /** A proxy or gateway speaking Anthropic's Messages API. Default: Anthropic's own. */
  ANTHROPIC_BASE_URL: optionalString.pipe(
    z.url({ protocol: /^https?$/, error: 'not an http(s) URL' }).optional(),
  ),
  /** Claude models offered for text jobs, comma-separated; the first is the default. */
  ANTHROPIC_TEXT_MODELS: z
    .string()
    .transform((value) => value.split(',').map((model) => model.trim()))
    .pipe(z.array(z.string().min(1).max(128)).min(1))
    .default([...DEFAULT_ANTHROPIC_TEXT_MODELS]),
  /** Enables the `replicate` provider (submit a prediction, then poll it). */
  REPLICATE_API_TOKEN: optionalString,
  /** Any server speaking Replicate's predictions API. Default: Replicate's own. */
  REPLICATE_BASE_URL: optionalString,
  /** How often a Replicate prediction is polled. Default 1000 ms. */
  REPLICATE_POLL_INTERVAL_MS: z.coerce.number().int().positive().default(1000),
  /** Enables the `fal` provider (fal's queue: submit a request, then poll it). */
  FAL_KEY: optionalString,
  /** Any server speaking fal's queue API (a proxy). Default: fal's own, `https://queue.fal.run`. */
  FAL_BASE_URL: optionalString.pipe(z.url({ protocol: /^https?$/, error: 'not an http(s) URL' }).optional()),
  /** How often a fal request's status is polled. Default 1000 ms. */
  FAL_POLL_INTERVAL_MS: z.coerce.number().int().positive().default(1000),
  /** Let the image URLs fal answers with be on private or loopback addresses (a proxy). Default false. */
  FAL_IMAGE_URLS_ALLOW_PRIVATE: booleanFlag.default(false),
  /** Enables the `gemini` provider (Google's Gemini API, with an AI Studio key). */
  GEMINI_API_KEY: optionalString,
  /** Any server speaking the Gemini API (a proxy; the tests' fake). Default: Google's own. */
  GEMINI_BASE_URL: optionalString.pipe(
    z.url({ protocol: /^https?$/, error: 'not an http(s) URL' }).optional(),
  ),
  /**
   * Gemini models offered for text jobs, comma-separated; the first is the default. Default
   * `gemini-2.5-flash,gemini-2.5-pro,gemini-2.5-flash-lite`.
   */
  GEMINI_TEXT_MODELS: modelList(['gemini-2.5-flash', 'gemini-2.5-pro', 'gemini-2.5-flash-lite']),
  /** How long the local provider takes per image, to behave like a real one. Default 6000 ms. */
  LOCAL_PROVIDER_DELAY_MS: z.coerce.number().int().min(0).default(6000),
  /** Progress steps the local provider reports over that delay. Default 6. */
  LOCAL_PROVIDER_STEPS: z.coerce.number().int().min(1).max(100).default(6),
  /** A worker silent for this long is presumed dead and its provider call retried. Default 10 s. */
  PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: z.coerce.number().positive().default(10),
  /** Upper bound of one provider attempt. Default 180 s. */
  PROVIDER_ATTEMPT_TIMEOUT_SECONDS: z.coerce.number().positive().default(180),
  /** Provider calls one job may make before it fails. Default 6. */
  PROVIDER_MAX_CALLS: z.coerce.number().int().min(1).default(6),
  /** Bad outputs (wrong size, undecodable) regenerated before the job fails `invalid_output`. Default 2. */
  PROVIDER_MAX_INVALID_OUTPUTS: z.coerce.number().int().min(0).default(2),
  /** Time from submission after which a job stops retrying (outages included). Default 900 s. */
  PROVIDER_RETRY_BUDGET_SECONDS: z.coerce.number().positive().default(900),
  /** First retry delay after a retryable failure; doubles per call, with jitter. Default 1000 ms. */
  PROVIDER_BACKOFF_INITIAL_MS: z.coerce.number().int().positive().default(1000),
  /** Cap of that delay. Default 60000 ms. */
  PROVIDER_BACKOFF_MAX_MS: z.coerce.number().int().positive().default(60_000),
  /** Consecutive provider failures (5xx, timeouts, resets) that open its circuit for everyone. Default 5. */
  BREAKER_FAILURE_THRESHOLD: z.coerce.number().int().min(1).default(5),
  /** How long an open circuit holds calls back before one probe may go. Default 30 s. */
  BREAKER_COOLDOWN_SECONDS: z.coerce.number().positive().default(30),
  /** Calls per minute and calls in flight, fleet-wide, by `provider` or `provider:model`. Default `{}`. */
  PROVIDER_LIMITS: jsonValue(z.record(z.string().min(1), providerLimitSchema)).default({}),
  /** Rate of a provider with no entry in PROVIDER_LIMITS. Default 600/min. */
  PROVIDER_DEFAULT_RPM: z.coerce.number().positive().default(600),
  /** Calls in flight of a provider with no entry in PROVIDER_LIMITS. Default 8. */
  PROVIDER_DEFAULT_CONCURRENCY: z.coerce.number().int().min(1).default(8),
  /** Plans by name: `{"free":{"maxRunning":2,"weight":1,"cache":"reuse"},…}` (`cache` optional). */
  PLANS: jsonValue(z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/), planSchema)).default({
    free: { maxRunning: 2, weight: 1, cache: 'off' },
    pro: { maxRunning: 8, weight: 4, cache: 'off' },
  }),
  /** Plan of a new user. Default `free`. */
  DEFAULT_PLAN: z.string().default('free'),
  /**
   * Fallback chains: for each `provider:model`, the equivalents its jobs move to, in order, when it
   * cannot serve them in time: `{"openai:gpt-image-1":[{"provider":"fal","model":"fal-ai/flux/dev",
   * "sizes":{"256x256":"512x512"}}]}`. Every entry must name a configured provider and model of the
   * same kind. Default: none.
   */
  FALLBACK_CHAINS: jsonValue(
    z.record(
      z.string().regex(/^[^:]+:.+$/, 'not provider:model'),
      z.array(fallbackEntrySchema).min(1).max(5),
    ),
  ).default({}),
  /** Failed calls (`provider_unavailable` or timeouts) in a row on one entry before a job moves on. Default 2. */
  FALLBACK_AFTER_FAILED_CALLS: z.coerce.number().int().min(1).default(2),
  /** Credits a job costs, by `provider`, `provider:model` or `provider:model:size` (most specific wins). */
  JOB_COSTS: jsonValue(z.record(z.string().min(1), z.number().int().min(0))).default({}),
  /**
   * Text models priced by the tokens a job used rather than per job, by `provider:model`: each a list of
   * prices from a day on, `[{"since":"2026-01-01","inputPerMillion":150,"outputPerMillion":600}]`, in
   * credits per million tokens. A job is priced as of its submission. Default: none.
   */
  TEXT_TOKEN_PRICES: jsonValue(
    z.record(z.string().regex(/^[^:]+:.+$/, 'not provider:model'), z.array(tokenPriceSchema).min(1)),
  ).default({}),
  /** How long the first job of a provider batch waits for others before the batch is sent. Default 60 s. */
  BATCH_WINDOW_SECONDS: z.coerce.number().positive().default(60),
  /** The most jobs one provider batch takes; the next job starts another. Default 500. */
  BATCH_MAX_JOBS: z.coerce.number().int().min(1).max(50_000).default(500),
  /** How often a submitted batch is asked how it stands. Default 60 s. */
  BATCH_POLL_SECONDS: z.coerce.number().positive().default(60),
  /** Cost of a job that JOB_COSTS does not price. Default 1. */
  JOB_COST_DEFAULT: z.coerce.number().int().min(0).default(1),
  /**
   * Who shares results of identical requests (`cache: "reuse"`): `user` (each user their own) or
   * `deployment` (every user of this deployment). Default `user`.
   */
  RESULT_CACHE_SCOPE: z.enum(['user', 'deployment']).default('user'),
  /** How long a succeeded job's result serves identical requests. Default 86400 s (24 h). */
  RESULT_CACHE_MAX_AGE_SECONDS: z.coerce.number().int().min(0).default(86_400),
  /** Credits a job served by another's call or result costs (at most its own price). Default 0. */
  RESULT_CACHE_PRICE: z.coerce.number().int().min(0).default(0),
  /** Credits the `npm start` demo user is granted when created. Default 1000. */
  DEMO_USER_CREDITS: z.coerce.number().int().min(0).default(1000),
  /** Submissions per minute per API key. Default 120. */
  SUBMIT_RATE_PER_MINUTE: z.coerce.number().positive().default(120),
  /** Submissions a key may make at once before the rate applies. Default 30. */
  SUBMIT_BURST: z.coerce.number().int().min(1).default(30),
  /** WebSockets and event streams one API key may hold open on one API process. Default 100. */
  MAX_STREAMS_PER_KEY: z.coerce.number().int().min(1).default(100),
  /** Job subscriptions one API key may hold over its WebSockets on one API process. Default 1000. */
  MAX_SUBSCRIPTIONS_PER_KEY: z.coerce.number().int().min(1).default(1000),
  /** Days a succeeded job keeps its result. Default 7. */
  RETENTION_SUCCEEDED_DAYS: z.coerce.number().positive().default(7),
  /** Days a failed, canceled or expired job keeps its details. Default 30. */
  RETENTION_UNSUCCESSFUL_DAYS: z.coerce.number().positive().default(30),
  /** How often the retention schedule runs. Default 1 h. */
  RETENTION_INTERVAL_MINUTES: z.coerce.number().positive().default(60),
  /**
   * A job row still `queued` this long after its submission with no workflow behind it (Temporal was
   * away at submit, or the API died before the start) is ended `expired`, its credits refunded.
   * Default 120 s.
   */
  ORPHAN_JOB_GRACE_SECONDS: z.coerce.number().positive().default(120),
  /** How often the orphan sweep runs. Default 60 s. */
  ORPHAN_SWEEP_INTERVAL_SECONDS: z.coerce.number().positive().default(60),
  /** Webhook deliveries are retried for at least this long. Default 86400 s (24 h). */
  WEBHOOK_RETRY_WINDOW_SECONDS: z.coerce.number().positive().default(86_400),
  /** First retry delay of a webhook delivery; doubles per attempt, with jitter. Default 5000 ms. */
  WEBHOOK_BACKOFF_INITIAL_MS: z.coerce.number().int().positive().default(5000),
  /** Cap of that delay. Default 3600000 ms (1 h). */
  WEBHOOK_BACKOFF_MAX_MS: z.coerce.number().int().positive().default(3_600_000),
  /** One webhook attempt, connection included. Default 10 s. */
  WEBHOOK_ATTEMPT_TIMEOUT_SECONDS: z.coerce.number().positive().max(300).default(10),
  /** Let webhooks reach private, loopback and link-local addresses. Default false. */
  WEBHOOK_ALLOW_PRIVATE: booleanFlag.default(false),
  /**
   * Enables the operator API (`/v1/admin/…`) for `Authorization: Bearer <this>`; at least 32 characters.
   * Unset: those routes do not exist (404).
   */
  ADMIN_API_KEY: optionalString.pipe(z.string().min(32).optional()),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /**
   * `/metrics` on the API and the worker answers only `Authorization: Bearer <this>`; at least 16
   * characters. Unset: open, as Prometheus scrapes by default.
   */
  METRICS_TOKEN: optionalString.pipe(z.string().min(16).optional()),
  /**
   * An OTLP/HTTP collector (`http://localhost:4318`, as Jaeger and the OpenTelemetry Collector listen):
   * each process sends its traces to `<this>/v1/traces`. Unset: no tracing, and no interceptors.
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalString.pipe(
    z.url({ protocol: /^https?$/, error: 'not an http(s) URL' }).optional(),
  ),
  /** Port of the worker's `/metrics` and `/healthz` server; 0 picks a free one. Default 9464. */
  WORKER_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** Interface that server listens on. Default: HOST. */
  WORKER_HTTP_HOST: optionalString,
  /** The sliding window the job failure rate is measured over. Default 300 s. */
  FAILURE_RATE_WINDOW_SECONDS: z.coerce.number().positive().default(300),
  /** Share of finished jobs that may fail in that window before the signal fires. Default 0.05. */
  FAILURE_RATE_THRESHOLD: z.coerce.number().min(0).max(1).default(0.05),
  /** Finished jobs the window must hold before the rate is judged at all. Default 20. */
  FAILURE_RATE_MIN_JOBS: z.coerce.number().int().min(1).default(20),
  /** How often the failure rate is measured. Default 15 s. */
  FAILURE_RATE_CHECK_SECONDS: z.coerce.number().positive().default(15),
});

/** The environment as the schema leaves it: defaults applied, values checked and converted. */
export type Env = z.infer<typeof envSchema>;

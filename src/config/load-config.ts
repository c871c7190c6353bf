import path from 'node:path';
import type { z } from 'zod';
import type {
  CircuitPolicy,
  FailureRatePolicy,
  ObjectStoreConfig,
  PayloadKey,
  ProviderRetryPolicy,
  ResultCachePolicy,
  RetentionPolicy,
  StreamLimits,
  WebhookRetryPolicy,
} from './policies.js';
import {
  envSchema,
  type Env,
  type FallbackEntry,
  type Plan,
  type ProviderLimit,
  type TokenPriceTable,
} from './schema.js';

/**
 * `T` with every property readonly, all the way down, as deepFreeze leaves it at run time; byte arrays
 * cannot be frozen and keep their type.
 */
type DeepReadonly<T> = T extends ArrayBufferView
  ? T
  : T extends readonly (infer Item)[]
    ? readonly DeepReadonly<Item>[]
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

/** Kiln's configuration: read once at start, validated, frozen. */
export type Config = DeepReadonly<ConfigFields>;

interface ConfigFields {
  http: { port: number; host: string };
  temporal: {
    address: string | undefined;
    namespace: string;
    taskQueue: string;
    /** Payloads are encrypted with the first and decrypted with any; empty: plaintext. */
    payloadKeys: readonly PayloadKey[];
    /** Where `npm start` runs its dev server when no `address` is given. */
    devServer: { port: number; uiPort: number };
    /** The Worker Deployment Version the workers poll as; undefined: unversioned. */
    deployment: { deploymentName: string; buildId: string } | undefined;
  };
  /** The codec endpoint (`/codec`, with the operator API): Web UI origins let through CORS. */
  codecServer: { allowedOrigins: readonly string[] };
  /**
   * `embedded`: no DATABASE_URL was given, so `url` is the embedded PostgreSQL that `npm start` (or
   * `npm run services`) runs on `port` with its cluster in `dataDir`.
   */
  database: { url: string; embedded: { dataDir: string; port: number } | undefined };
  storage: ObjectStoreConfig;
  providers: {
    defaultProvider: string;
    openai:
      | {
          apiKey: string;
          baseURL: string | undefined;
          textModels: readonly string[];
          /** Image URLs the server answers with may be on private addresses (a self-hosted server). */
          imageUrlsAllowPrivate: boolean;
        }
      | undefined;
    replicate: { apiToken: string; baseURL: string | undefined; pollIntervalMs: number } | undefined;
    anthropic: { apiKey: string; baseURL: string | undefined; textModels: readonly string[] } | undefined;
    fal:
      | {
          apiKey: string;
          baseURL: string | undefined;
          pollIntervalMs: number;
          imageUrlsAllowPrivate: boolean;
        }
      | undefined;
    gemini: { apiKey: string; baseURL: string | undefined; textModels: readonly string[] } | undefined;
    local: { delayMs: number; steps: number };
  };
  timeouts: { providerHeartbeatSeconds: number; providerAttemptSeconds: number };
  retry: ProviderRetryPolicy;
  circuit: CircuitPolicy;
  retention: RetentionPolicy & { intervalMinutes: number };
  /** Rows left without a workflow: how long before they are ended, and how often that is looked for. */
  orphans: { graceSeconds: number; sweepIntervalSeconds: number };
  providerLimits: { byKey: Readonly<Record<string, ProviderLimit>>; fallback: ProviderLimit };
  plans: { byName: Readonly<Record<string, Plan>>; defaultPlan: string };
  /** Per-job prices, and the token prices of usage-priced text models. */
  costs: { byKey: Readonly<Record<string, number>>; fallback: number; tokens: TokenPriceTable };
  /** Fallback chains by `provider:model`, and the failed calls in a row that move a job on. */
  fallback: { chains: Readonly<Record<string, readonly FallbackEntry[]>>; afterFailedCalls: number };
  /** Who shares results of identical requests, for how long, and at what price (see ResultCachePolicy). */
  resultCache: ResultCachePolicy;
  /** How jobs of the batch tier are pooled into provider batches, and how often those are polled. */
  batches: { windowSeconds: number; maxJobs: number; pollSeconds: number };
  demoUserCredits: number;
  submitRateLimit: { perMinute: number; burst: number };
  /** What one API key may hold open on one API process: sockets and event streams, and subscriptions. */
  streamLimits: StreamLimits;
  webhooks: { retry: WebhookRetryPolicy; allowPrivate: boolean };
  /** The operator API's key; the API has no admin routes without one. */
  adminApiKey: string | undefined;
  logLevel: Env['LOG_LEVEL'];
  observability: {
    workerHttp: { port: number; host: string };
    /** What `/metrics` asks of a scrape: this Bearer token, or nothing when unset. */
    metricsToken: string | undefined;
    /** Where traces go (OTLP/HTTP); unset: tracing is off. */
    tracing: { otlpEndpoint: string | undefined };
    failureRate: FailureRatePolicy;
  };
  dataDir: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
}

/**
 * Freezes `value` and everything below it, so that no part of the configuration changes after start.
 * Byte arrays (the payload keys) cannot be frozen and are left as they are.
 */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value;
  for (const child of Object.values(value)) deepFreeze(child);
  return Object.freeze(value);
}

function databaseConfig(e: Env): Config['database'] {
  if (e.DATABASE_URL) return { url: e.DATABASE_URL, embedded: undefined };
  const port = e.EMBEDDED_POSTGRES_PORT;
  return {
    url: `postgres://kiln@127.0.0.1:${port}/kiln`,
    embedded: { dataDir: path.join(e.KILN_DATA_DIR, 'postgres'), port },
  };
}

/** The variable that enables each provider but `local`, which configuredProviders always offers. */
const PROVIDER_CREDENTIALS = {
  openai: 'OPENAI_API_KEY',
  replicate: 'REPLICATE_API_TOKEN',
  anthropic: 'ANTHROPIC_API_KEY',
  fal: 'FAL_KEY',
  gemini: 'GEMINI_API_KEY',
} as const satisfies Record<Exclude<Env['DEFAULT_PROVIDER'], 'local'>, keyof Env>;

/** `env` checked against the schema, then the variables that must agree with each other. */
function parseEnv(env: NodeJS.ProcessEnv): Env {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) throw new ConfigError(`invalid configuration: ${describeIssues(parsed.error)}`);
  const e = parsed.data;
  if (!(e.DEFAULT_PLAN in e.PLANS)) {
    throw new ConfigError(`invalid configuration: DEFAULT_PLAN: ${e.DEFAULT_PLAN} is not in PLANS`);
  }
  // A deployment without a build (or a build of no deployment) names no version a worker could poll as.
  if ((e.WORKER_DEPLOYMENT_NAME === undefined) !== (e.WORKER_BUILD_ID === undefined)) {
    const missing = e.WORKER_BUILD_ID === undefined ? 'WORKER_BUILD_ID' : 'WORKER_DEPLOYMENT_NAME';
    throw new ConfigError(
      `invalid configuration: ${missing}: required with the other Worker Versioning variable`,
    );
  }
  // A default provider without its key would be offered to no request, so every default job would fail.
  const provider = e.DEFAULT_PROVIDER;
  if (provider !== 'local' && e[PROVIDER_CREDENTIALS[provider]] === undefined) {
    throw new ConfigError(
      `invalid configuration: DEFAULT_PROVIDER: ${provider} needs ${PROVIDER_CREDENTIALS[provider]}`,
    );
  }
  return e;
}

function temporalConfig(e: Env): Config['temporal'] {
  return {
    address: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    taskQueue: e.TEMPORAL_TASK_QUEUE,
    payloadKeys: e.PAYLOAD_ENCRYPTION_KEYS ?? [],
    devServer: { port: e.TEMPORAL_DEV_PORT, uiPort: e.TEMPORAL_DEV_UI_PORT },
    deployment:
      e.WORKER_DEPLOYMENT_NAME && e.WORKER_BUILD_ID
        ? { deploymentName: e.WORKER_DEPLOYMENT_NAME, buildId: e.WORKER_BUILD_ID }
        : undefined,
  };
}

function storageConfig(e: Env): Config['storage'] {
  if (e.STORAGE_DRIVER !== 's3') {
    return { driver: 'filesystem', dir: e.STORAGE_DIR ?? path.join(e.KILN_DATA_DIR, 'objects') };
  }
  return {
    driver: 's3',
    bucket: e.S3_BUCKET,
    endpoint: e.S3_ENDPOINT,
    region: e.S3_REGION,
    accessKeyId: e.S3_ACCESS_KEY_ID,
    secretAccessKey: e.S3_SECRET_ACCESS_KEY,
    forcePathStyle: e.S3_FORCE_PATH_STYLE,
  };
}

function providersConfig(e: Env): Config['providers'] {
  return {
    defaultProvider: e.DEFAULT_PROVIDER,
    openai: e.OPENAI_API_KEY
      ? {
          apiKey: e.OPENAI_API_KEY,
          baseURL: e.OPENAI_BASE_URL,
          textModels: e.OPENAI_TEXT_MODELS,
          imageUrlsAllowPrivate: e.OPENAI_IMAGE_URLS_ALLOW_PRIVATE,
        }
      : undefined,
    replicate: e.REPLICATE_API_TOKEN
      ? {
          apiToken: e.REPLICATE_API_TOKEN,
          baseURL: e.REPLICATE_BASE_URL,
          pollIntervalMs: e.REPLICATE_POLL_INTERVAL_MS,
        }
      : undefined,
    anthropic: e.ANTHROPIC_API_KEY
      ? { apiKey: e.ANTHROPIC_API_KEY, baseURL: e.ANTHROPIC_BASE_URL, textModels: e.ANTHROPIC_TEXT_MODELS }
      : undefined,
    fal: e.FAL_KEY
      ? {
          apiKey: e.FAL_KEY,
          baseURL: e.FAL_BASE_URL,
          pollIntervalMs: e.FAL_POLL_INTERVAL_MS,
          imageUrlsAllowPrivate: e.FAL_IMAGE_URLS_ALLOW_PRIVATE,
        }
      : undefined,
    gemini: e.GEMINI_API_KEY
      ? { apiKey: e.GEMINI_API_KEY, baseURL: e.GEMINI_BASE_URL, textModels: e.GEMINI_TEXT_MODELS }
      : undefined,
    local: { delayMs: e.LOCAL_PROVIDER_DELAY_MS, steps: e.LOCAL_PROVIDER_STEPS },
  };
}

/** How one job's provider calls are timed, retried and cut off. */
function providerCallPolicies(e: Env): Pick<Config, 'timeouts' | 'retry' | 'circuit'> {
  return {
    timeouts: {
      providerHeartbeatSeconds: e.PROVIDER_HEARTBEAT_TIMEOUT_SECONDS,
      providerAttemptSeconds: e.PROVIDER_ATTEMPT_TIMEOUT_SECONDS,
    },
    retry: {
      maxCalls: e.PROVIDER_MAX_CALLS,
      maxInvalidOutputs: e.PROVIDER_MAX_INVALID_OUTPUTS,
      budgetSeconds: e.PROVIDER_RETRY_BUDGET_SECONDS,
      initialBackoffMs: e.PROVIDER_BACKOFF_INITIAL_MS,
      maxBackoffMs: e.PROVIDER_BACKOFF_MAX_MS,
    },
    circuit: {
      failureThreshold: e.BREAKER_FAILURE_THRESHOLD,
      cooldownMs: e.BREAKER_COOLDOWN_SECONDS * 1000,
      probeTimeoutMs: e.PROVIDER_ATTEMPT_TIMEOUT_SECONDS * 1000,
    },
  };
}

/** The schedules that clean up after jobs: finished ones past retention, rows left without a workflow. */
function cleanupPolicies(e: Env): Pick<Config, 'retention' | 'orphans'> {
  return {
    retention: {
      succeededDays: e.RETENTION_SUCCEEDED_DAYS,
      unsuccessfulDays: e.RETENTION_UNSUCCESSFUL_DAYS,
      intervalMinutes: e.RETENTION_INTERVAL_MINUTES,
    },
    orphans: {
      graceSeconds: e.ORPHAN_JOB_GRACE_SECONDS,
      sweepIntervalSeconds: e.ORPHAN_SWEEP_INTERVAL_SECONDS,
    },
  };
}

/** What a user may run and spend: the fleet's provider limits, plans, prices and submission rate. */
function usagePolicies(
  e: Env,
): Pick<
  Config,
  | 'providerLimits'
  | 'plans'
  | 'costs'
  | 'fallback'
  | 'resultCache'
  | 'batches'
  | 'demoUserCredits'
  | 'submitRateLimit'
  | 'streamLimits'
> {
  return {
    providerLimits: {
      byKey: e.PROVIDER_LIMITS,
      fallback: { rpm: e.PROVIDER_DEFAULT_RPM, concurrency: e.PROVIDER_DEFAULT_CONCURRENCY },
    },
    plans: { byName: e.PLANS, defaultPlan: e.DEFAULT_PLAN },
    costs: { byKey: e.JOB_COSTS, fallback: e.JOB_COST_DEFAULT, tokens: e.TEXT_TOKEN_PRICES },
    fallback: { chains: e.FALLBACK_CHAINS, afterFailedCalls: e.FALLBACK_AFTER_FAILED_CALLS },
    resultCache: {
      scope: e.RESULT_CACHE_SCOPE,
      maxAgeSeconds: e.RESULT_CACHE_MAX_AGE_SECONDS,
      price: e.RESULT_CACHE_PRICE,
    },
    batches: {
      windowSeconds: e.BATCH_WINDOW_SECONDS,
      maxJobs: e.BATCH_MAX_JOBS,
      pollSeconds: e.BATCH_POLL_SECONDS,
    },
    demoUserCredits: e.DEMO_USER_CREDITS,
    submitRateLimit: { perMinute: e.SUBMIT_RATE_PER_MINUTE, burst: e.SUBMIT_BURST },
    streamLimits: { streamsPerKey: e.MAX_STREAMS_PER_KEY, subscriptionsPerKey: e.MAX_SUBSCRIPTIONS_PER_KEY },
  };
}

function webhooksConfig(e: Env): Config['webhooks'] {
  return {
    retry: {
      retryWindowSeconds: e.WEBHOOK_RETRY_WINDOW_SECONDS,
      initialBackoffMs: e.WEBHOOK_BACKOFF_INITIAL_MS,
      maxBackoffMs: e.WEBHOOK_BACKOFF_MAX_MS,
      attemptTimeoutSeconds: e.WEBHOOK_ATTEMPT_TIMEOUT_SECONDS,
    },
    allowPrivate: e.WEBHOOK_ALLOW_PRIVATE,
  };
}

function observabilityConfig(e: Env): Config['observability'] {
  return {
    workerHttp: { port: e.WORKER_HTTP_PORT, host: e.WORKER_HTTP_HOST ?? e.HOST },
    metricsToken: e.METRICS_TOKEN,
    tracing: { otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT },
    failureRate: {
      windowSeconds: e.FAILURE_RATE_WINDOW_SECONDS,
      threshold: e.FAILURE_RATE_THRESHOLD,
      minJobs: e.FAILURE_RATE_MIN_JOBS,
      checkEverySeconds: e.FAILURE_RATE_CHECK_SECONDS,
    },
  };
}

/** Parses `env`; throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnv(env);
  return deepFreeze({
    http: { port: e.PORT, host: e.HOST },
    temporal: temporalConfig(e),
    codecServer: { allowedOrigins: e.CODEC_ALLOWED_ORIGINS },
    database: databaseConfig(e),
    storage: storageConfig(e),
    providers: providersConfig(e),
    ...providerCallPolicies(e),
    ...cleanupPolicies(e),
    ...usagePolicies(e),
    webhooks: webhooksConfig(e),
    adminApiKey: e.ADMIN_API_KEY,
    logLevel: e.LOG_LEVEL,
    observability: observabilityConfig(e),
    dataDir: e.KILN_DATA_DIR,
  });
}

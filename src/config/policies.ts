/*
 * The shapes of the policies and settings the configuration hands to the rest of Kiln. Plain types and
 * constants with no imports: workflow code imports this file, so it must stay free of I/O and Node
 * built-ins.
 */

/** How the workflow retries provider calls that failed in a retryable way. */
export interface ProviderRetryPolicy {
  /** Provider calls one job may make, the first included. */
  maxCalls: number;
  /** Bad outputs regenerated before the job fails `invalid_output`. */
  maxInvalidOutputs: number;
  /** Counted from submission: no retry is scheduled past it. */
  budgetSeconds: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** How a webhook delivery is retried. */
export interface WebhookRetryPolicy {
  /** Attempts go on at least this long after a run's first one. */
  retryWindowSeconds: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** One attempt, connection included. */
  attemptTimeoutSeconds: number;
}

/** How the shared breaker of each provider behaves. */
export interface CircuitPolicy {
  /** Consecutive retryable failures that open the circuit. */
  failureThreshold: number;
  /** How long an open circuit refuses calls before letting one probe through. */
  cooldownMs: number;
  /** A probe that has not reported back by then is presumed lost, and another may go. */
  probeTimeoutMs: number;
}

/** How long finished jobs keep their results and details. */
export interface RetentionPolicy {
  succeededDays: number;
  /** Failed, canceled and expired jobs: kept longer, for whoever investigates them. */
  unsuccessfulDays: number;
}

/** Who shares results of identical requests (`cache: "reuse"`), for how long, and at what price. */
export interface ResultCachePolicy {
  /**
   * `user`: a user's requests are served only by their own jobs; `deployment`: by any user's. (Kiln has
   * no tenants yet: a tenant scope comes with them.)
   */
  scope: 'user' | 'deployment';
  /** How long after its job succeeded a stored result serves identical requests; 0: only jobs in flight are joined. */
  maxAgeSeconds: number;
  /** Credits a job served by the cache is charged (at most what it reserved). */
  price: number;
}

/** What one API key may hold open on one API process. */
export interface StreamLimits {
  /** WebSockets and event streams. */
  streamsPerKey: number;
  /** Job subscriptions over its WebSockets. */
  subscriptionsPerKey: number;
}

/** When the job failure rate counts as too high. */
export interface FailureRatePolicy {
  /** The sliding window, counted back from now over the jobs' end times. */
  windowSeconds: number;
  /** Failed share of finished jobs above which the signal fires (0.05 = 5 %). */
  threshold: number;
  /** Below this many finished jobs in the window the rate is not judged: the signal stays off. */
  minJobs: number;
  checkEverySeconds: number;
}

/** An AES-256-GCM key and the id payloads encrypted with it carry. */
export interface PayloadKey {
  id: string;
  /** 32 bytes. */
  key: Uint8Array;
}

/** How to reach an S3-compatible bucket (AWS S3, MinIO, R2, …). */
export interface S3ObjectStoreOptions {
  bucket: string;
  /** Base URL of a non-AWS server such as MinIO; omit for AWS S3. */
  endpoint?: string;
  region: string;
  /** Static credentials; when either is missing the SDK's default credential chain is used. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** `true` for MinIO and most self-hosted servers, which do not serve bucket names as subdomains. */
  forcePathStyle: boolean;
}

/** Which object store to use and how to reach it. */
export type ObjectStoreConfig =
  | {
      driver: 'filesystem';
      /** Root folder; objects, their metadata and temporary files live below it. */
      dir: string;
    }
  | ({ driver: 's3' } & S3ObjectStoreOptions);

/** Chat models offered when the deployment names none; an OpenAI-compatible server names its own. */
export const DEFAULT_OPENAI_TEXT_MODELS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'gpt-4.1'] as const;

/** Claude models offered when the deployment names none: the newest Haiku (the cheap default), Sonnet, Opus. */
export const DEFAULT_ANTHROPIC_TEXT_MODELS = [
  'claude-haiku-5-5',
  'claude-sonnet-5-5',
  'claude-opus-5-5',
] as const;

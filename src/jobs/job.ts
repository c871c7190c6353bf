/**
 * The job vocabulary shared by the API, the workflow and the activities. Plain data only: the
 * workflow bundle imports this file, so it must stay free of I/O and Node built-ins.
 */

/** Every state a generation job can be in. */
export const JobStatus = {
  queued: 'queued',
  running: 'running',
  storing: 'storing',
  succeeded: 'succeeded',
  failed: 'failed',
  canceled: 'canceled',
  /** Not started before its start deadline: nothing was sent to the provider, nothing charged. */
  expired: 'expired',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const TERMINAL_STATUSES: readonly JobStatus[] = [
  JobStatus.succeeded,
  JobStatus.failed,
  JobStatus.canceled,
  JobStatus.expired,
];

/** Not ended yet: waiting, or being worked on. */
export const UNFINISHED_STATUSES: readonly JobStatus[] = [
  JobStatus.queued,
  JobStatus.running,
  JobStatus.storing,
];

export type TerminalStatus =
  typeof JobStatus.succeeded | typeof JobStatus.failed | typeof JobStatus.canceled | typeof JobStatus.expired;

export function isTerminal(status: JobStatus): status is TerminalStatus {
  return TERMINAL_STATUSES.includes(status);
}

/**
 * How a job ended, as its row says. The write that ends a job may find it ended already (a repeated
 * write, or an end recorded outside the workflow): the workflow ends as the row says, so that the two
 * never disagree.
 */
export interface JobEnding {
  status: TerminalStatus;
  failure: { code: JobFailureCode; message: string } | null;
}

/**
 * What a job that is not being worked on waits for. Before a call: one of its user's running slots
 * (`admission`), a provider call slot or the provider's pacing (`provider_slot`), the provider's pause
 * after a 429 or an emptied quota (`rate_limited`), the shared circuit breaker's cool-down
 * (`circuit_open`). Between calls: the backoff after a failed one (`backoff`). During a call: a turn
 * in the provider's own queue, which took the task but has not started it (`provider_queue`, fal).
 * Instead of a call: the call of an identical job it joined (`identical_job`, the result cache), or
 * its line in a provider batch, pooled or submitted (`provider_batch`, the batch tier).
 */
export const WaitReason = {
  admission: 'admission',
  providerSlot: 'provider_slot',
  rateLimited: 'rate_limited',
  circuitOpen: 'circuit_open',
  backoff: 'backoff',
  providerQueue: 'provider_queue',
  identicalJob: 'identical_job',
  providerBatch: 'provider_batch',
} as const;
export type WaitReason = (typeof WaitReason)[keyof typeof WaitReason];
export const WAIT_REASONS: readonly WaitReason[] = Object.values(WaitReason);

/** Why a job waits, since when, until when at the latest, and which of its calls it waits to make. */
export interface JobWaiting {
  reason: WaitReason;
  since: string;
  /** When the job looks again (or expires, if its start deadline is sooner); null when unknown. */
  until: string | null;
  /** The provider call the job waits to make, counted as its retry policy counts them: 1, 2, … */
  attempt: number;
  /** The most calls its retry policy allows. */
  maxCalls: number;
  /** `provider_queue` only: requests ahead of the job's in the provider's own queue. */
  position?: number;
}

/**
 * Why a job left one entry of its fallback chain for the next: its circuit is open; its pause after a
 * 429 (or its `Retry-After`) outlasts what the job may wait; it failed `provider_unavailable` (or timed
 * out) call after call; it refused Kiln's credentials; its queue cannot start the call before the job's
 * start deadline. Never the request's own fault (`invalid_request`, `content_policy`).
 */
export const SwitchReason = {
  circuitOpen: 'circuit_open',
  rateLimited: 'rate_limited',
  providerUnavailable: 'provider_unavailable',
  authentication: 'authentication',
  startDeadline: 'start_deadline',
} as const;
export type SwitchReason = (typeof SwitchReason)[keyof typeof SwitchReason];

/** One provider and model a job may be served by, with the parameters mapped to it. */
export interface ProviderChoice {
  provider: string;
  model: string;
  /** Image jobs only; null for text. */
  size: ImageSize | null;
  /** Text jobs only; null for images. */
  maxTokens: number | null;
}

/**
 * The entry of its fallback chain a job calls now, or, once it ended, the last one it called (the one
 * that made its result, if it succeeded): the requested provider until the job switches.
 */
export interface ServedBy {
  provider: string;
  model: string;
  /** Image jobs only; null for text. */
  size: ImageSize | null;
  /** 0: the requested provider; 1, 2, …: the fallbacks, in the chain's order. */
  entry: number;
  /** How the job came to this entry; null on the requested one. */
  switched: { from: { provider: string; model: string }; reason: SwitchReason } | null;
}

/** `image`: a PNG; `text`: a chat completion, streamed to subscribers token by token. */
export const JOB_KINDS = ['image', 'text'] as const;

/** The most tokens a text job may ask to be written, and what it is given when it asks for none. */
export const MAX_TOKENS_LIMIT = 16_384;
export const DEFAULT_MAX_TOKENS = 1024;
export type JobKind = (typeof JOB_KINDS)[number];

export const IMAGE_SIZES = ['256x256', '512x512', '1024x1024'] as const;
export type ImageSize = (typeof IMAGE_SIZES)[number];

export function imageDimensions(size: ImageSize): { width: number; height: number } {
  const [width, height] = size.split('x').map(Number) as [number, number];
  return { width, height };
}

/**
 * Why a job failed, as a closed set. Provider adapters classify every failure into one of these once;
 * everything downstream (retry policy, job table, API) only reads the code.
 */
export const FailureCode = {
  invalidRequest: 'invalid_request',
  contentPolicy: 'content_policy',
  authentication: 'authentication',
  rateLimited: 'rate_limited',
  providerUnavailable: 'provider_unavailable',
  timeout: 'timeout',
  invalidOutput: 'invalid_output',
  deadlineExceeded: 'deadline_exceeded',
  internal: 'internal',
} as const;
export type FailureCode = (typeof FailureCode)[keyof typeof FailureCode];

/** The failure type of a refused job-table transition; never retried. */
export const ILLEGAL_TRANSITION = 'illegal_transition';

/** What a failed job's row can say it failed of: a classified failure, or a refused transition. */
export type JobFailureCode = FailureCode | typeof ILLEGAL_TRANSITION;

export const JOB_FAILURE_CODES: readonly JobFailureCode[] = [
  ...Object.values(FailureCode),
  ILLEGAL_TRANSITION,
];

export function isJobFailureCode(code: string): code is JobFailureCode {
  return (JOB_FAILURE_CODES as readonly string[]).includes(code);
}

/** Time limits a client may put on a job, counted from submission. */
export interface JobDeadline {
  /** The provider call must have started by then, or the job ends `expired`. */
  startWithinSeconds?: number;
  /** The job must have succeeded by then, or it is canceled at the provider and fails `deadline_exceeded`. */
  finishWithinSeconds?: number;
}

/**
 * What a job's webhook may be told about: the job entering one of these statuses, its progress, why it
 * waits, its move to the next provider of its fallback chain, or its move out of the batch tier.
 */
export const WEBHOOK_EVENTS = [
  ...Object.values(JobStatus),
  'progress',
  'waiting',
  'provider_switched',
  'tier_changed',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Where a job's events are POSTed, and which of them. */
export interface JobWebhook {
  url: string;
  /** Defaults to the terminal statuses. */
  events: WebhookEvent[];
}

/**
 * Whether an identical request may serve this one: `reuse` joins an identical job in flight or takes the
 * stored result of one that succeeded recently (the result cache); `off` always calls a provider.
 */
export const CacheMode = { reuse: 'reuse', off: 'off' } as const;
export type CacheMode = (typeof CacheMode)[keyof typeof CacheMode];
export const CACHE_MODES: readonly CacheMode[] = Object.values(CacheMode);

/**
 * How the result cache served a job: `joined`, another job's provider call in flight (while it waits
 * on that call, and after); `reused`, the stored result of one that had succeeded.
 */
export const CacheOutcome = { joined: 'joined', reused: 'reused' } as const;
export type CacheOutcome = (typeof CacheOutcome)[keyof typeof CacheOutcome];
export const CACHE_OUTCOMES: readonly CacheOutcome[] = Object.values(CacheOutcome);

/**
 * How soon a job wants its result: `standard`, a call of its own now; `batch`, a line in a provider
 * batch that may take up to a day, at the provider's batch price (OpenAI's is half).
 */
export const ServiceTier = { standard: 'standard', batch: 'batch' } as const;
export type ServiceTier = (typeof ServiceTier)[keyof typeof ServiceTier];
export const SERVICE_TIERS: readonly ServiceTier[] = Object.values(ServiceTier);

/**
 * What a batch job does when the batch tier cannot serve it in time (its finish deadline is nearer
 * than a batch may take, or its batch ended with its line unrun): `standard`, a call of its own at the
 * standard price; `fail`, it fails `deadline_exceeded` and pays nothing.
 */
export const BatchMiss = { standard: 'standard', fail: 'fail' } as const;
export type BatchMiss = (typeof BatchMiss)[keyof typeof BatchMiss];
export const BATCH_MISSES: readonly BatchMiss[] = Object.values(BatchMiss);

/** The most a provider batch may take, from its submission: OpenAI's only completion window. */
export const BATCH_COMPLETION_WINDOW_SECONDS = 24 * 3600;

/** A validated generation request, with defaults applied (provider and model are always set). */
export interface GenerationRequest {
  kind: JobKind;
  prompt: string;
  provider: string;
  model: string;
  /** Image jobs only; null for text. */
  size: ImageSize | null;
  /** Text jobs only: the completion's token limit; null for images. */
  maxTokens: number | null;
  deadline?: JobDeadline;
  webhook?: JobWebhook;
  /**
   * The providers to fall back on, as the client asked: `false` for none, a list for its own chain;
   * unset for the chain the deployment configures for `provider:model`.
   */
  fallback?: false | ProviderChoice[];
  /** As the client asked; unset for the plan's default. */
  cache?: CacheMode;
  /** Unset for `standard`; a batch request (text only) also says what it does when a batch misses. */
  tier?: typeof ServiceTier.batch;
  onBatchMiss?: BatchMiss;
}

/** The tokens a text call was billed for, as the provider counted them. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

/**
 * The tokens of the call that made a text job's result. `estimated`: the provider's count was lost (a
 * retried attempt found the result kept but not its count), so both are bounds from above: the prompt's
 * bytes and the result's.
 */
export interface JobUsage extends TokenUsage {
  estimated: boolean;
}

/**
 * A job's credits, from the ledger: what its latest run reserved, and once it ended, what of that it
 * was charged (`settled`) and what came back (`refunded`); the two add up to `reserved`.
 */
export interface JobCredits {
  reserved: number;
  settled: number | null;
  refunded: number | null;
}

/** Where a job stands in the queue: as the 202 tells it, and a GET while it waits in one. */
export interface QueueEstimate {
  /** Jobs expected to start before this one. */
  queuePosition: number;
  estimatedWaitSeconds: number;
}

/** A job as the public API shows it. Never carries the prompt text: only its hash. */
export interface Job {
  id: string;
  status: JobStatus;
  kind: JobKind;
  provider: string;
  model: string;
  /** Null for text jobs. */
  size: ImageSize | null;
  promptSha256: string;
  progress: number;
  attempts: number;
  /** Grows by one with every change to the row; subscribers use it to drop stale snapshots. */
  version: number;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  failure: { code: JobFailureCode; message: string } | null;
  result: { contentType: string; byteSize: number; sha256: string } | null;
  /** When retention removed the result (and the job's details) after its retention period. */
  purgedAt: string | null;
  /** Why the job waits; null while it is worked on, and once it ended. */
  waiting: JobWaiting | null;
  servedBy: ServedBy;
  /** Set when another job's call or stored result served this one (see CacheOutcome); else null. */
  cacheOutcome: CacheOutcome | null;
  /** A text job's tokens, once it has a result; null for images. */
  usage: JobUsage | null;
  /**
   * The tier serving the job: as requested, until a batch job the batch tier could not serve in time
   * moves to `standard` (its `onBatchMiss`).
   */
  tier: ServiceTier;
  /** Where a job is read (its GET, the listing); events and webhooks leave it out. */
  credits?: JobCredits;
  /** On its GET, while the job waits in a queue (Kiln's, or the provider's own): where it stands now. */
  queue?: QueueEstimate;
}

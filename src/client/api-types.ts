/*
 * The API's shapes as a client sees them. The package ships without the server and without zod, so they
 * are declared here rather than inferred from the server's schemas; src/api/client-contract.ts fails to
 * compile whenever the two differ.
 */

export const JOB_STATUSES = [
  'queued',
  'running',
  'storing',
  'succeeded',
  'failed',
  'canceled',
  'expired',
] as const;
/** `queued → running → storing → succeeded`, or one of the other three ends. */
export type JobStatus = (typeof JOB_STATUSES)[number];
export type TerminalStatus = 'succeeded' | 'failed' | 'canceled' | 'expired';

const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'canceled', 'expired'];

export function isTerminal(status: JobStatus): status is TerminalStatus {
  return TERMINAL_STATUSES.includes(status);
}

export type JobKind = 'image' | 'text';
export type ImageSize = '256x256' | '512x512' | '1024x1024';

/** Why a job failed: a closed set, classified once by the server. */
export type JobFailureCode =
  | 'invalid_request'
  | 'content_policy'
  | 'authentication'
  | 'rate_limited'
  | 'provider_unavailable'
  | 'timeout'
  | 'invalid_output'
  | 'deadline_exceeded'
  | 'internal'
  | 'illegal_transition';

/** A job as the API shows it. Never carries the prompt text: only its hash. */
export interface Job {
  id: string;
  status: JobStatus;
  kind: JobKind;
  provider: string;
  model: string;
  /** Null for text jobs. */
  size: ImageSize | null;
  promptSha256: string;
  /** Percent of the provider call done. */
  progress: number;
  /** Provider calls made so far. */
  attempts: number;
  /** Grows by one with every change to the job: the `seq` of its latest event. */
  version: number;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  failure: { code: JobFailureCode; message: string } | null;
  result: { contentType: string; byteSize: number; sha256: string } | null;
  /** When retention removed the result after its retention period. */
  purgedAt: string | null;
  /** Why the job waits; null while it is worked on, and once it ended. */
  waiting: JobWaiting | null;
  /** The provider the job calls now, or last called: the one that made the result, once succeeded. */
  servedBy: ServedBy;
  /**
   * `joined`: an identical job's provider call served this one (set while it waits on that call);
   * `reused`: an identical job's stored result served it at once; null: it called a provider itself.
   */
  cacheOutcome: 'joined' | 'reused' | null;
  /**
   * A text job's tokens once it has a result; null for images. `estimated`: the provider's count was
   * lost, and both are bounds from above.
   */
  usage: { inputTokens: number; outputTokens: number; estimated: boolean } | null;
  /**
   * The tier serving the job: as requested, until a batch job the batch tier could not serve in time
   * moved to `standard`.
   */
  tier: 'standard' | 'batch';
  /**
   * From the ledger, on GET and in the listing (not in events): what the job's latest run reserved, and
   * once it ended, what of that it was charged (`settled`) and what came back (`refunded`).
   */
  credits?: { reserved: number; settled: number | null; refunded: number | null };
  /** On the job's GET, while it waits in a queue (Kiln's, or the provider's own): where it stands now. */
  queue?: { queuePosition: number; estimatedWaitSeconds: number };
}

/**
 * Why a job moved on to the next provider of its fallback chain: the provider's circuit is open, its
 * pause after a 429 outlasts what the job may wait, its calls failed in a row, it refused Kiln's
 * credentials, or its queue cannot start the job before its start deadline.
 */
export type SwitchReason =
  'circuit_open' | 'rate_limited' | 'provider_unavailable' | 'authentication' | 'start_deadline';

export interface ServedBy {
  provider: string;
  model: string;
  /** The size asked of this provider; null for text jobs. */
  size: ImageSize | null;
  /** 0: the provider submitted for; 1, 2, …: its fallbacks, in order. */
  entry: number;
  /** How the job came to this entry; null on the one submitted for. */
  switched: { from: { provider: string; model: string }; reason: SwitchReason } | null;
}

/** A provider a job may fall back on, and what to ask of it. */
export interface FallbackChoice {
  provider: string;
  /** Default: the provider's default model. */
  model?: string;
  /** Image jobs; default: the job's own size. */
  size?: ImageSize;
  /** Text jobs; default: the job's own limit. */
  maxTokens?: number;
}

/**
 * What a job waits for: one of its user's running slots (`admission`), a provider call slot or the
 * provider's pacing (`provider_slot`), the provider's pause after a 429 (`rate_limited`), the
 * provider's circuit breaker cooling down (`circuit_open`), the backoff after a failed call, a turn in
 * the provider's own queue (`provider_queue`), an identical job's call it joined (`identical_job`), or
 * its line in a provider batch, pooled or sent (`provider_batch`).
 */
export type WaitReason =
  | 'admission'
  | 'provider_slot'
  | 'rate_limited'
  | 'circuit_open'
  | 'backoff'
  | 'provider_queue'
  | 'identical_job'
  | 'provider_batch';

export interface JobWaiting {
  reason: WaitReason;
  since: string;
  /** When the job looks again at the latest; null when unknown. */
  until: string | null;
  /** The provider call the job waits to make: 1, 2, … */
  attempt: number;
  /** The most calls its retry policy allows. */
  maxCalls: number;
  /** `provider_queue` only: requests ahead of the job's in the provider's own queue. */
  position?: number;
}

/**
 * `status`: the job entered a status (or started another provider call); `progress`: only progress
 * moved; `waiting`: only why the job waits changed; `tier_changed`: a batch job left the batch tier
 * (its `tier`); `provider_switched`: the job moved on to the next
 * provider of its fallback chain (see `servedBy`).
 */
export type JobEventType = 'status' | 'progress' | 'waiting' | 'provider_switched' | 'tier_changed';

/** One change of a job; `seq` counts 1, 2, 3… per job with no gaps. */
export interface JobEvent {
  seq: number;
  type: JobEventType;
  job: Job;
}

/**
 * What a job's webhook may be told about: the job entering one of these statuses, its progress, why it
 * waits, its move to a fallback provider.
 */
export type WebhookEvent = JobStatus | 'progress' | 'waiting' | 'provider_switched' | 'tier_changed';

/** What a submission of either kind takes. */
interface GenerationFields {
  prompt: string;
  provider?: string;
  model?: string;
  /** Counted from submission. */
  deadline?: JobDeadline;
  /** Where the job's events are POSTed (signed), and which of them; default the terminal statuses. */
  webhook?: { url: string; events?: WebhookEvent[] };
  /**
   * The providers to fall back on when this one cannot serve the job in time: `false` for none, a list
   * for these; unset, the chain the deployment configures.
   */
  fallback?: false | FallbackChoice[];
  /**
   * `reuse`: an identical request in flight is joined, or the stored result of one that succeeded
   * recently serves this one, at the deployment's cache price; `off`: a provider is called. Unset, the
   * plan's default.
   */
  cache?: 'reuse' | 'off';
}

export interface ImageGenerationBody extends GenerationFields {
  kind: 'image';
  /** Default 1024x1024. */
  params?: { size?: ImageSize };
}

export interface TextGenerationBody extends GenerationFields {
  kind: 'text';
  /**
   * `batch`: the job is a line in a provider batch, done within a day at the batch price; unset, a
   * call of its own now.
   */
  tier?: 'standard' | 'batch';
  /**
   * What a batch job does when the batch tier cannot serve it in time: `standard`, a call of its own at
   * the standard price (the default); `fail`, it fails `deadline_exceeded` and pays nothing.
   */
  onBatchMiss?: 'standard' | 'fail';
  /** The completion's token limit, 1–16384. Default 1024. */
  params?: { maxTokens?: number };
}

/** Body of `POST /v1/generations`: each kind takes its own parameters. */
export type GenerationBody = ImageGenerationBody | TextGenerationBody;

/** The query of `GET /v1/generations`. */
export interface ListQuery {
  status?: JobStatus;
  kind?: JobKind;
  /** 1–100. Default 20. */
  limit?: number;
  cursor?: string;
}

export interface JobLinks {
  self: string;
  content: string;
  events: string;
  stream: string;
}

/** The `202` of `POST /v1/generations`: the job accepted, with where it stands in the queue. */
export interface AcceptedJob {
  id: string;
  status: JobStatus;
  /** Jobs expected to start before this one, at submission. */
  queuePosition: number;
  estimatedWaitSeconds: number;
  links: JobLinks;
}

export interface JobPage {
  data: Job[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** The `202` of `POST /v1/generations/{id}/cancel`. */
export interface Canceling {
  id: string;
  status: JobStatus;
  links: JobLinks;
}

/** A job's deadlines, counted from submission. */
export interface JobDeadline {
  /** The provider call must have started by then, or the job ends `expired`. */
  startWithinSeconds?: number;
  /** The job must have succeeded by then, or it fails `deadline_exceeded`. */
  finishWithinSeconds?: number;
}

/** The `200` of `POST /v1/generations/{id}/deadline`: the job's deadlines as they now are. */
export interface DeadlineExtended {
  id: string;
  deadline: JobDeadline;
}

export interface Me {
  id: string;
  name: string;
  plan: string;
  /** Reserved: held by unfinished jobs; settled and refunded: of what jobs that ended reserved. */
  credits: { balance: number; reserved: number; settled: number; refunded: number };
  jobs: { queued: number; running: number };
}

/** What one job of a model costs: per size for images, one price (size null) for text. */
export interface ModelPrice {
  size: ImageSize | null;
  credits: number;
}

/** A provider the deployment calls, for one kind of job. */
export interface OfferedProvider {
  name: string;
  kind: JobKind;
  /** A submission of this kind that names no provider goes to it. */
  isDefault: boolean;
  /** The model a submission to it that names none gets. */
  defaultModel: string;
  models: {
    name: string;
    /** Each size an image model makes, or the one price of a text model priced per job. */
    prices: ModelPrice[];
    /**
     * A text model priced by the tokens a job uses, in credits per million tokens (none for one priced
     * per job): a job reserves its worst case (its prompt's UTF-8 bytes + 16, and `maxTokens`) and is
     * charged what it used.
     */
    tokenPrice: {
      since: string;
      inputPerMillion: number;
      outputPerMillion: number;
      /** The batch tier's prices, where the model is offered in batches. */
      batch?: { inputPerMillion: number; outputPerMillion: number };
    } | null;
  }[];
}

/** The `200` of `GET /v1/providers`. */
export interface ProviderList {
  data: OfferedProvider[];
}

/** A text job's output as streamed so far by its latest attempt (0 before the first). */
export interface StreamedText {
  attempt: number;
  text: string;
}

/** `text`: `delta` goes at `offset` (UTF-16 units) of attempt `attempt`'s text; `reset`: it starts again. */
export type TextUpdate =
  { type: 'text'; attempt: number; offset: number; delta: string } | { type: 'reset'; attempt: number };

/** Every error answer's body. */
export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown };
}

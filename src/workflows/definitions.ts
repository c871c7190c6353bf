import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ProviderRetryPolicy, WebhookRetryPolicy } from '../config/policies.js';
import type { TokenPricing } from '../jobs/token-pricing.js';
import type {
  BatchMiss,
  GenerationRequest,
  JobDeadline,
  JobStatus,
  JobWaiting,
  ProviderChoice,
} from '../jobs/job.js';

// Defined by the configuration, which produces them; re-exported because the workflow inputs carry them.
export type { ProviderRetryPolicy, WebhookRetryPolicy };

/** Input of the `runGeneration` workflow. Everything it needs is here: workflows read no environment. */
export interface GenerationInput {
  jobId: string;
  request: GenerationRequest;
  /** Fixed per job so that a retried provider call asks for the same image. */
  seed: number;
  providerTimeouts: { heartbeatSeconds: number; attemptSeconds: number };
  retry: ProviderRetryPolicy;
  /** The provider's own task queue: its server-side rate limit paces every worker's calls together. */
  providerTaskQueue: string;
  /** Resolved at submission; absent when the job has nothing to fall back on (and before release 0.2.0). */
  fallback?: FallbackRoute;
  /**
   * Set when the provider it was submitted for prices it by the tokens it uses, as of its submission; a
   * job's fallback entries carry their own.
   */
  tokenPricing?: TokenPricing;
  /** Set when the job may be served by an identical one (`cache: "reuse"`); absent when it did not. */
  cache?: ResultCacheInput;
  /** Set for a job of the batch tier: its batch prices, and what it does when a batch misses. */
  batch?: BatchTierInput;
}

/** What a batch job needs: how it is charged in a batch, when to give up on one, and how. */
export interface BatchTierInput {
  /** The model's batch prices in force at submission, and the prompt's token bound. */
  pricing: TokenPricing;
  onMiss: BatchMiss;
  /** How long a line may be pooled before its batch is sent; the provider's window runs from then. */
  windowSeconds: number;
}

/** Input of `poolProviderBatches`: one pool per provider and model, forming batches of their lines. */
export interface BatchPoolInput {
  provider: string;
  model: string;
}

/**
 * The pool's workflow id: one per deployment (its task queue), provider and model, so that a job's
 * join finds (or starts) it, and deployments sharing a namespace keep their pools apart.
 */
export function batchPoolWorkflowId(taskQueue: string, provider: string, model: string): string {
  return `batch-pool-${taskQueue}-${provider}-${model}`;
}

/** Input of `runProviderBatch`: one batch, from its file to the outcome of each of its lines. */
export interface ProviderBatchInput {
  batchId: string;
  provider: string;
  /** Poll interval once the batch was sent, in seconds. */
  pollSeconds: number;
  /** Set by a run that continued as new while polling: the batch was sent. */
  sent?: boolean;
}

/** Sent to a batch pool when a line joined it: the pool forms a batch once it has enough, or waited. */
export const batchLineJoinedSignal = defineSignal('batchLineJoined');

/** Sent to a batch job when its batch was sent, and when it settled. */
export const batchChangedSignal = defineSignal('batchChanged');

/** What a job that opted in to the result cache needs to find an identical one, and what it then costs. */
export interface ResultCacheInput {
  /** `user:<id>` or `deployment`: whose jobs may serve this one. */
  scope: string;
  /** The request's `cacheFingerprint`. */
  fingerprint: string;
  /** How long after its job succeeded a stored result may serve this one. */
  maxAgeSeconds: number;
  /** Credits the job is charged when another job serves it. */
  price: number;
  /** Credits its submission reserved: what a call of its own would have cost, for the savings metric. */
  reserved: number;
}

/** One provider a job may be served by, as the workflow calls it: through its own task queue, at its price. */
export interface RouteEntry extends ProviderChoice {
  taskQueue: string;
  /** Credits a job served by this entry costs: for a usage-priced one, the most it may. */
  cost: number;
  /** Set when this entry is priced by the tokens a job uses (see TEXT_TOKEN_PRICES). */
  tokenPricing?: TokenPricing;
}

/** A job's fallback chain: the provider it was submitted for first, then its equivalents in order. */
export interface FallbackRoute {
  entries: RouteEntry[];
  /** Failed calls (`provider_unavailable`, timeouts) in a row on one entry before the job moves on. */
  afterFailedCalls: number;
}

/** Where the workflow stands; answers before the first job-table write and in the Temporal UI. */
export const jobStatusQuery = defineQuery<JobStatus>('status');

/**
 * A provider call the workflow asked for and has not heard back from: under way, or still in the
 * provider's task queue behind others (which only Temporal knows: the activity has not started).
 */
export interface PendingCall {
  attempt: number;
  maxCalls: number;
  since: string;
}

/** What the workflow knows of the job's waits: the wait it holds the job in, or the call it awaits. */
export interface WorkflowWaiting {
  waiting: JobWaiting | null;
  call: PendingCall | null;
}

/** Why the job waits, as the workflow knows it now; both null once the job ended. */
export const jobWaitingQuery = defineQuery<WorkflowWaiting>('waiting');

/** Sent to a job that joined another's call when that job ended, however it ended. */
export const sourceEndedSignal = defineSignal('sourceEnded');

/** Sent to a waiting job when one of its user's running slots was given to it. */
export const admittedSignal = defineSignal('admitted');

/**
 * A client's later deadlines, counted from submission as at submit; answered with the job's deadlines
 * as they now are. Refused with a DeadlineRefusal type: a deadline may only move later.
 */
export const extendDeadlineUpdate = defineUpdate<JobDeadline, [JobDeadline]>('extendDeadline');

/** Why an extension was refused: the ApplicationFailure type the update fails with. */
export const DeadlineRefusal = {
  shortened: 'deadline_shortened',
  noSuchDeadline: 'no_such_deadline',
} as const;
export type DeadlineRefusal = (typeof DeadlineRefusal)[keyof typeof DeadlineRefusal];

/** Input of the `deliverWebhook` workflow: one run of one delivery. */
export interface DeliverWebhookInput {
  deliveryId: string;
  run: number;
  retry: WebhookRetryPolicy;
  /** Where a run continued as new left off. */
  carried?: { giveUpAtMs: number; attempts: number };
}

/** How one run of a delivery ended: `settled` when a later run or a success elsewhere made it moot. */
export type DeliveryRunOutcome = 'succeeded' | 'failed' | 'settled';

/**
 * The `deliverWebhook` workflow's signature, for those who start it: they cannot import the workflow
 * itself, which would tie activities to workflow code.
 */
export type DeliverWebhookWorkflow = (input: DeliverWebhookInput) => Promise<DeliveryRunOutcome>;

/** One workflow per run of a delivery: starting it twice is refused, so a retried dispatch sends once. */
export function deliveryWorkflowId(deliveryId: string, run: number): string {
  return `webhook-${deliveryId}-${run}`;
}

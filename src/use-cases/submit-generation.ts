import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Config, Plan } from '../config/index.js';
import { recordEventTrace } from '../db/job-event-repository.js';
import type { Database, JobRow } from '../db/schema.js';
import { submitJob, type NewJob, type SubmitJobResult } from '../db/submission-repository.js';
import type { SubmitRate, TokenRefusal } from '../db/submit-rate-limiter.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { jobChangeContextFrom } from '../job-changes/job-change-context.js';
import { cacheFingerprint, jobIdFor, requestFingerprint, seedFor, sha256Hex } from '../jobs/job-identity.js';
import { CacheMode, JobStatus, ServiceTier, type GenerationRequest } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import { currentTraceId } from '../observability/trace-context.js';
import { planNamed } from '../jobs/plans.js';
import { limitKeyFor, providerTaskQueue } from '../capacity/provider-limits.js';
import { resolveFallbackRoute, type ResolvedRoute } from '../fallback/fallback-chain.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { GenerationInput, ResultCacheInput } from '../workflows/definitions.js';
import type { runGeneration } from '../workflows/index.js';
import { insufficientCredits, type InsufficientCredits } from './insufficient-credits.js';
import { batchTierOf, reserveFor, type BatchTier } from './batch-tier-input.js';
import { jobWorkflowOptions } from './job-workflow-options.js';
import { estimateQueue, type QueueEstimate } from './queue-estimate.js';
import type { RecentQueues } from './recent-queues.js';

export interface SubmitDependencies {
  db: Kysely<Database>;
  temporal: Client;
  logger: Logger;
  /** What a job costs, from `config.costs`. */
  costs: Config['costs'];
  /** What the job may fall back on must be offered here. */
  providers: ProviderRegistry;
  config: Pick<
    Config,
    | 'temporal'
    | 'timeouts'
    | 'retry'
    | 'providerLimits'
    | 'plans'
    | 'webhooks'
    | 'submitRateLimit'
    | 'fallback'
    | 'resultCache'
    | 'batches'
  >;
  /** This process's recent reads of each provider's queue, for the estimates of new jobs. */
  queues: RecentQueues;
}

/** Who submits: a key's user, and the key's SHA-256 (it must still be live, and pays a submit token). */
export interface Submitter {
  userId: string;
  keySha256: string;
}

export interface Submission {
  row: JobRow;
  /** True when this key was seen before and the existing job is returned. */
  replayed: boolean;
  /** The workflow run this submission started, for its log line; none when the run already existed. */
  runId?: string;
  estimate: QueueEstimate;
}

/** Why a submission was refused: nothing was created, and nothing started. */
export type SubmitRefusal =
  | InsufficientCredits
  /** The key's job was submitted with a different request. */
  | { kind: 'refused'; reason: 'idempotency_key_reused' }
  /** A batch request for a model whose batch prices are not in force yet. */
  | { kind: 'refused'; reason: 'batch_unpriced' }
  /** The key was revoked (or removed) since this process last saw it. */
  | { kind: 'refused'; reason: 'unauthorized' }
  /** The key submitted past its rate; it may again in `retryAfterMs`. */
  | { kind: 'refused'; reason: 'rate_limited'; retryAfterMs: number; rate: SubmitRate };

export type SubmitOutcome = { kind: 'submitted'; submission: Submission } | SubmitRefusal;

/** How long a submission waits for Temporal to take the workflow's start. */
const START_DEADLINE_MS = 5000;

/**
 * Where the job looks for an identical one, if it may (its request's `cache`, else its plan's): never
 * outside its user's results at `user` scope. `reserved`: what its submission reserved.
 */
function resultCacheOf(
  { resultCache }: SubmitDependencies['config'],
  row: JobRow,
  request: GenerationRequest,
  plan: Plan,
  reserved: number,
): ResultCacheInput | undefined {
  if ((request.cache ?? plan.cache) !== CacheMode.reuse) return undefined;
  const scope = resultCache.scope === 'user' ? `user:${row.user_id}` : 'deployment';
  const { maxAgeSeconds, price } = resultCache;
  return { scope, fingerprint: cacheFingerprint(request), maxAgeSeconds, price, reserved };
}

async function startWorkflow(
  deps: SubmitDependencies,
  row: JobRow,
  request: GenerationRequest,
  plan: Plan,
  { route: fallback, primary }: Pick<ResolvedRoute, 'route' | 'primary'>,
  cache: ResultCacheInput | undefined,
  batch: BatchTier | undefined,
): Promise<string | undefined> {
  const { temporal, providerLimits } = deps.config;
  const limitKey = limitKeyFor(providerLimits, request.provider, request.model);
  const input: GenerationInput = {
    jobId: row.id,
    request,
    seed: seedFor(row.id),
    providerTimeouts: {
      heartbeatSeconds: deps.config.timeouts.providerHeartbeatSeconds,
      attemptSeconds: deps.config.timeouts.providerAttemptSeconds,
    },
    retry: deps.config.retry,
    providerTaskQueue: providerTaskQueue(temporal.taskQueue, limitKey),
    ...(fallback ? { fallback } : {}),
    ...(primary.tokenPricing ? { tokenPricing: primary.tokenPricing } : {}),
    ...(cache ? { cache } : {}),
    ...(batch ? { batch: batch.input } : {}),
  };
  try {
    // REJECT_DUPLICATE: a key whose job already ran must never run (and be paid for) again.
    // Bounded: with the frontend away the client retries for ~20 s, past what a caller waits for a 202.
    // Started or not, the row stays queued, and the same key (or the orphan sweep) settles it.
    const handle = await deps.temporal.withDeadline(Date.now() + START_DEADLINE_MS, () =>
      deps.temporal.workflow.start<typeof runGeneration>('runGeneration', {
        ...jobWorkflowOptions(row, plan, temporal.taskQueue),
        args: [input],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      }),
    );
    return handle.firstExecutionRunId;
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    return undefined;
  }
}

/** The job a submission writes, its id derived from the user and their key. */
function newJob(userId: string, idempotencyKey: string, request: GenerationRequest): NewJob {
  const id = jobIdFor(userId, idempotencyKey);
  return {
    id,
    user_id: userId,
    idempotency_key: idempotencyKey,
    request_sha256: requestFingerprint(request),
    prompt_sha256: sha256Hex(request.prompt),
    kind: request.kind,
    provider: request.provider,
    model: request.model,
    size: request.size,
    status: JobStatus.queued,
    workflow_id: id,
    webhook: request.webhook ?? null,
    tier: request.tier ?? ServiceTier.standard,
  };
}

/** A refused submit token, as a refusal of the submission. */
export function tokenRefused(refusal: TokenRefusal, rate: SubmitRate): SubmitRefusal {
  return refusal.kind === 'unauthorized'
    ? { kind: 'refused', reason: 'unauthorized' }
    : { kind: 'refused', reason: 'rate_limited', retryAfterMs: refusal.retryAfterMs, rate };
}

function refusalOf(
  result: Exclude<SubmitJobResult, { kind: 'created' | 'replayed' }>,
  rate: SubmitRate,
): SubmitRefusal {
  return result.kind === 'insufficient_credits' ? insufficientCredits(result) : tokenRefused(result, rate);
}

/**
 * Records the job with its cost reserved (after taking the key's submit token, in the same statement),
 * then starts its workflow while estimating its place in the queue. The row comes first so that the job
 * can always be read back, even with no worker running; a row left `queued` by a crash between the two
 * steps gets its workflow from the next submission with the same key.
 */
export async function submitGeneration(
  deps: SubmitDependencies,
  { userId, keySha256 }: Submitter,
  idempotencyKey: string,
  request: GenerationRequest,
): Promise<SubmitOutcome> {
  const job = newJob(userId, idempotencyKey, request);
  const rate = deps.config.submitRateLimit;
  const at = new Date();
  const config = { ...deps.config, costs: deps.costs };
  const resolved = resolveFallbackRoute(config, deps.providers, request, at);
  const batch = batchTierOf(config, request, at);
  if (batch === 'unpriced') return { kind: 'refused', reason: 'batch_unpriced' };
  const cost = reserveFor(resolved.reserve, batch);
  const result = await submitJob(deps.db, { keySha256, rate, job, cost });
  if (result.kind !== 'created' && result.kind !== 'replayed') return refusalOf(result, rate);
  const { row } = result;
  const created = result.kind === 'created';
  if (!created && row.request_sha256 !== job.request_sha256) {
    return { kind: 'refused', reason: 'idempotency_key_reused' };
  }
  const plan = planNamed(deps.config.plans, result.plan);
  const traceId = currentTraceId();
  // The estimate reads only the job table: it runs while the workflow starts, not after it; so does
  // noting the trace of the first event, which `submit_job` wrote without it (tracing on only).
  const [runId, estimate] = await Promise.all([
    created || row.status === JobStatus.queued
      ? startWorkflow(
          deps,
          row,
          request,
          plan,
          resolved,
          resultCacheOf(deps.config, row, request, plan, cost),
          batch,
        )
      : undefined,
    created ? deps.queues.ofNewJob(row, plan) : estimateQueue(deps.db, deps.config, row, plan),
    created && traceId ? recordEventTrace(deps.db, row.id, row.version, traceId) : undefined,
  ]);
  // The `queued` event's delivery, if the webhook asked for it; a crash here leaves it to the next change.
  await afterJobChange(jobChangeContextFrom(deps), { row });
  return { kind: 'submitted', submission: { row, replayed: !created, runId, estimate } };
}

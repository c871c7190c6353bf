import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Config, Plan } from '../config/index.js';
import { costOf } from '../credits/job-cost.js';
import { InsufficientCreditsError, reserveCredits } from '../db/credit-repository.js';
import { insertJobOnce } from '../db/job-repository.js';
import type { Database, JobRow, NewJobRow } from '../db/schema.js';
import type { Caller } from '../db/user-repository.js';
import { ensureWebhookSecret } from '../db/webhook-secret-repository.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { jobChangeContextFrom } from '../job-changes/job-change-context.js';
import { jobIdFor, requestFingerprint, seedFor, sha256Hex } from '../jobs/job-identity.js';
import { JobStatus, type GenerationRequest } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import { planNamed } from '../jobs/plans.js';
import { limitKeyFor, providerTaskQueue } from '../capacity/provider-limits.js';
import type { GenerationInput } from '../workflows/definitions.js';
import type { runGeneration } from '../workflows/index.js';
import { insufficientCredits, type InsufficientCredits } from './insufficient-credits.js';
import { jobWorkflowOptions } from './job-workflow-options.js';
import { estimateQueue, type QueueEstimate } from './queue-estimate.js';

export interface SubmitDependencies {
  db: Kysely<Database>;
  temporal: Client;
  logger: Logger;
  /** What a job costs, from `config.costs`. */
  costs: Config['costs'];
  config: Pick<Config, 'temporal' | 'timeouts' | 'retry' | 'providerLimits' | 'plans' | 'webhooks'>;
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
  | { kind: 'refused'; reason: 'idempotency_key_reused' };

export type SubmitOutcome = { kind: 'submitted'; submission: Submission } | SubmitRefusal;

/** How long a submission waits for Temporal to take the workflow's start. */
const START_DEADLINE_MS = 5000;

async function startWorkflow(
  deps: SubmitDependencies,
  row: JobRow,
  request: GenerationRequest,
  plan: Plan,
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

/**
 * Inserts the job and reserves its cost in one transaction: a job exists only if it was paid for, and
 * a replayed key (an existing row) reserves nothing.
 */
async function insertPaidJob(
  deps: SubmitDependencies,
  job: NewJobRow,
  request: GenerationRequest,
): Promise<{ kind: 'inserted'; row: JobRow; created: boolean } | InsufficientCredits> {
  const cost = costOf(deps.costs, request);
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const inserted = await insertJobOnce(trx, job);
      if (inserted.created) await reserveCredits(trx, job.user_id, job.id, cost);
      // Created on first use, so that every delivery of the job can be signed.
      if (inserted.created && request.webhook) await ensureWebhookSecret(trx, job.user_id);
      return { kind: 'inserted' as const, ...inserted };
    });
  } catch (error) {
    if (!(error instanceof InsufficientCreditsError)) throw error;
    return insufficientCredits(error);
  }
}

function newJobRow(userId: string, idempotencyKey: string, request: GenerationRequest): NewJobRow {
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
    webhook: request.webhook ? JSON.stringify(request.webhook) : null,
  };
}

/**
 * Records the job with its cost reserved, then starts its workflow while estimating its place in the
 * queue. The row comes first so that the job can always be read back, even with no worker running; a
 * row left `queued` by a crash between the two steps gets its workflow from the next submission with
 * the same key.
 */
export async function submitGeneration(
  deps: SubmitDependencies,
  { userId, plan }: Pick<Caller, 'userId' | 'plan'>,
  idempotencyKey: string,
  request: GenerationRequest,
): Promise<SubmitOutcome> {
  const job = newJobRow(userId, idempotencyKey, request);
  const inserted = await insertPaidJob(deps, job, request);
  if (inserted.kind === 'refused') return inserted;
  const { row, created } = inserted;
  if (!created && row.request_sha256 !== job.request_sha256) {
    return { kind: 'refused', reason: 'idempotency_key_reused' };
  }
  const callerPlan = planNamed(deps.config.plans, plan);
  // The estimate reads only the job table: it runs while the workflow starts, not after it.
  const [runId, estimate] = await Promise.all([
    created || row.status === JobStatus.queued ? startWorkflow(deps, row, request, callerPlan) : undefined,
    estimateQueue(deps.db, deps.config, row, callerPlan),
  ]);
  // The `queued` event's delivery, if the webhook asked for it; a crash here leaves it to the next change.
  await afterJobChange(jobChangeContextFrom(deps), { row });
  return { kind: 'submitted', submission: { row, replayed: !created, runId, estimate } };
}

import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Config } from '../config.js';
import { insertJobOnce } from '../db/job-repository.js';
import type { Database, JobRow } from '../db/schema.js';
import { JobStatus, type GenerationRequest } from '../jobs/job.js';
import type { GenerateImageInput } from '../workflows/definitions.js';
import type { generateImage } from '../workflows/index.js';
import { ApiError } from './api-error.js';
import { requestFingerprint, sha256Hex } from './generation-request.js';

export interface SubmitDependencies {
  db: Kysely<Database>;
  temporal: Client;
  config: Pick<Config, 'temporal' | 'timeouts' | 'retry'>;
}

export interface Submission {
  row: JobRow;
  /** True when this key was seen before and the existing job is returned. */
  replayed: boolean;
}

/** Derived from the key, so every retry of a submission lands on the same job and workflow id. */
export function jobIdFor(userId: string, idempotencyKey: string): string {
  return `job_${sha256Hex(`${userId}\u0000${idempotencyKey}`).slice(0, 32)}`;
}

/** Whether `id` has the shape `jobIdFor` gives every job id. */
export function isJobId(id: string): boolean {
  return /^job_[0-9a-f]{32}$/.test(id);
}

function seedFor(jobId: string): number {
  return Number.parseInt(jobId.slice(4, 12), 16);
}

async function startWorkflow(
  deps: SubmitDependencies,
  row: JobRow,
  request: GenerationRequest,
): Promise<void> {
  const input: GenerateImageInput = {
    jobId: row.id,
    request,
    seed: seedFor(row.id),
    providerTimeouts: {
      heartbeatSeconds: deps.config.timeouts.providerHeartbeatSeconds,
      attemptSeconds: deps.config.timeouts.providerAttemptSeconds,
    },
    retry: deps.config.retry,
  };
  try {
    // REJECT_DUPLICATE: a key whose job already ran must never run (and be paid for) again.
    await deps.temporal.workflow.start<typeof generateImage>('generateImage', {
      taskQueue: deps.config.temporal.taskQueue,
      workflowId: row.workflow_id,
      args: [input],
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
  }
}

/**
 * Records the job, then starts its workflow. The row comes first so that the job can always be read
 * back, even with no worker running; a row left `queued` by a crash between the two steps gets its
 * workflow from the next submission with the same key.
 */
export async function submitGeneration(
  deps: SubmitDependencies,
  userId: string,
  idempotencyKey: string,
  request: GenerationRequest,
): Promise<Submission> {
  const id = jobIdFor(userId, idempotencyKey);
  const fingerprint = requestFingerprint(request);
  const { row, created } = await insertJobOnce(deps.db, {
    id,
    user_id: userId,
    idempotency_key: idempotencyKey,
    request_sha256: fingerprint,
    prompt_sha256: sha256Hex(request.prompt),
    kind: request.kind,
    provider: request.provider,
    model: request.model,
    size: request.size,
    status: JobStatus.queued,
    workflow_id: id,
  });
  if (!created && row.request_sha256 !== fingerprint) {
    throw new ApiError(
      422,
      'idempotency_key_reused',
      'this Idempotency-Key was used with a different request',
    );
  }
  if (created || row.status === JobStatus.queued) await startWorkflow(deps, row, request);
  return { row, replayed: !created };
}

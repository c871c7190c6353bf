import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { isTerminal, type JobDeadline } from '../jobs/job.js';
import { DeadlineRefusal, extendDeadlineUpdate } from '../workflows/definitions.js';
import { findOwnedJob } from './owned-job.js';

/** An update needs a worker to run it; past this the caller hears the job could not be reached. */
const UPDATE_DEADLINE_MS = 10_000;

/** What an extension came to: the job's deadlines as they now are, or why it was refused. */
export type ExtendOutcome =
  | { kind: 'extended'; deadline: JobDeadline }
  | { kind: 'refused'; reason: 'not_found' | 'finished' | DeadlineRefusal; message: string };

const refusalOf = (error: unknown): ExtendOutcome | undefined => {
  if (error instanceof WorkflowNotFoundError) {
    return { kind: 'refused', reason: 'finished', message: 'job has already finished' };
  }
  if (!(error instanceof WorkflowUpdateFailedError) || !(error.cause instanceof ApplicationFailure)) return;
  const { type, message } = error.cause;
  if (type === DeadlineRefusal.shortened || type === DeadlineRefusal.noSuchDeadline) {
    return { kind: 'refused', reason: type, message };
  }
  return undefined;
};

/**
 * Moves a job's deadlines later, counted from submission as at submit: an update to its workflow,
 * which holds them and whose waits read them afresh. Answered once the workflow has taken it.
 */
export async function extendDeadline(
  deps: { db: Kysely<Database>; temporal: Client },
  userId: string,
  jobId: string,
  extension: JobDeadline,
): Promise<ExtendOutcome> {
  const row = await findOwnedJob(deps.db, userId, jobId);
  if (!row) return { kind: 'refused', reason: 'not_found', message: 'no such job' };
  if (isTerminal(row.status))
    return { kind: 'refused', reason: 'finished', message: 'job has already finished' };
  try {
    const handle = deps.temporal.workflow.getHandle(row.workflow_id);
    const deadline = await deps.temporal.withDeadline(Date.now() + UPDATE_DEADLINE_MS, () =>
      handle.executeUpdate(extendDeadlineUpdate, { args: [extension] }),
    );
    return { kind: 'extended', deadline };
  } catch (error) {
    const refusal = refusalOf(error);
    if (refusal) return refusal;
    throw error;
  }
}

import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import { announceCallCancel } from '../db/call-cancel-notices.js';
import type { Database, JobRow } from '../db/schema.js';
import { isTerminal } from '../jobs/job.js';
import { findOwnedJob } from './owned-job.js';

/** What a cancel request came to: asked of the workflow, no such job (for this caller), or already ended. */
export type CancelOutcome = 'canceling' | 'not_found' | 'finished';

/**
 * Asks the job's workflow to cancel. The workflow aborts the provider call through the activity's
 * cancellation signal and records `canceled`; this only reports whether the request could be made.
 */
export async function cancelGeneration(
  deps: { db: Kysely<Database>; temporal: Client },
  userId: string,
  jobId: string,
): Promise<CancelOutcome> {
  const row = await findOwnedJob(deps.db, userId, jobId);
  return row ? cancelJob(deps, row) : 'not_found';
}

/**
 * Asks the workflow of any job to cancel, whoever owns it: what an operator's cancel does. Once
 * Temporal has the request, the workers hear of it too: the one calling the job's provider aborts the
 * request at once, rather than at its next heartbeat (up to 8 s later, long enough to finish and be paid).
 */
export async function cancelJob(
  deps: { db: Kysely<Database>; temporal: Client },
  row: JobRow,
): Promise<Exclude<CancelOutcome, 'not_found'>> {
  if (isTerminal(row.status)) return 'finished';
  try {
    await deps.temporal.workflow.getHandle(row.workflow_id).cancel();
  } catch (error) {
    // The workflow closed between the read and the cancel: the job has just finished.
    if (error instanceof WorkflowNotFoundError) return 'finished';
    throw error;
  }
  await announceCallCancel(deps.db, row.id);
  return 'canceling';
}

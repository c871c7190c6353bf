import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Database, JobRow } from '../db/schema.js';
import { isTerminal } from '../jobs/job.js';
import { findOwnedJob } from './owned-job.js';

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
  return row ? cancelJob(deps.temporal, row) : 'not_found';
}

/** Asks the workflow of any job to cancel, whoever owns it: what an operator's cancel does. */
export async function cancelJob(temporal: Client, row: JobRow): Promise<Exclude<CancelOutcome, 'not_found'>> {
  if (isTerminal(row.status)) return 'finished';
  try {
    await temporal.workflow.getHandle(row.workflow_id).cancel();
    return 'canceling';
  } catch (error) {
    // The workflow closed between the read and the cancel: the job has just finished.
    if (error instanceof WorkflowNotFoundError) return 'finished';
    throw error;
  }
}

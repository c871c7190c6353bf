import type { Client } from '@temporalio/client';
import { toJob } from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import { isTerminal, JobStatus, type Job } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import { jobWaitingQuery } from '../workflows/definitions.js';

/** Past this the job table answers: a GET must not hang on a busy or absent worker. */
const QUERY_DEADLINE_MS = 1000;

export interface LiveJobDependencies {
  temporal: Client;
  logger: Logger;
}

/** Only a job that waits, or may (queued), is worth asking its workflow about. */
function mayWait(row: JobRow): boolean {
  return !isTerminal(row.status) && (row.status === JobStatus.queued || row.waiting !== null);
}

/**
 * The job as its row says, with why it waits answered live by its workflow (the `waiting` query): its
 * `until` is the one the workflow will act on, not the one recorded when the wait began. The workflow
 * knows nothing of a call waiting for a slot in place, which only the row tells; and a workflow that
 * closed or cannot answer in time leaves the row's word.
 */
export async function liveJob(deps: LiveJobDependencies, row: JobRow): Promise<Job> {
  const job = toJob(row);
  if (!mayWait(row)) return job;
  try {
    const handle = deps.temporal.workflow.getHandle(row.workflow_id);
    const waiting = await deps.temporal.withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
      handle.query(jobWaitingQuery),
    );
    return waiting ? { ...job, waiting } : job;
  } catch (error) {
    deps.logger.debug({ jobId: row.id, err: error }, 'workflow not asked why the job waits; the row tells');
    return job;
  }
}

import type { Client, WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { toJob } from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import { isTerminal, JobStatus, WaitReason, type Job, type JobWaiting } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import { jobWaitingQuery, type PendingCall } from '../workflows/definitions.js';

/** Past this the job table answers: a GET must not hang on a busy or absent worker. */
const BRIDGE_DEADLINE_MS = 1000;

const SCHEDULED = proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED;

export interface LiveJobDependencies {
  temporal: Client;
  logger: Logger;
}

/** Only a job that waits, or may (queued), is worth asking its workflow about. */
function mayWait(row: JobRow): boolean {
  return !isTerminal(row.status) && (row.status === JobStatus.queued || row.waiting !== null);
}

/**
 * A call still in the provider's task queue (its activity scheduled, not started: every worker's call
 * slots are taken) waits for a provider slot; only Temporal knows, and tells it without a worker.
 */
async function queuedCall(handle: WorkflowHandle, call: PendingCall): Promise<JobWaiting | null> {
  const { raw } = await handle.describe();
  const queued = (raw.pendingActivities ?? []).some(
    (activity) => activity.activityType?.name === 'callProvider' && activity.state === SCHEDULED,
  );
  if (!queued) return null;
  return { reason: WaitReason.providerSlot, until: null, ...call };
}

async function askWorkflow(temporal: Client, row: JobRow): Promise<JobWaiting | null> {
  const handle = temporal.workflow.getHandle(row.workflow_id);
  const { waiting, call } = await handle.query(jobWaitingQuery);
  if (waiting) return waiting;
  // A call under way may be waiting in place for a slot: the call told the row, which answers then.
  return (call && (await queuedCall(handle, call))) ?? row.waiting;
}

/**
 * The job as its row says, with why it waits answered live by its workflow (the `waiting` query): its
 * `until` is the one the workflow will act on, not the one recorded when the wait began, and a call
 * queued in Temporal is told apart from one under way. A workflow that closed or cannot answer in time
 * leaves the row's word.
 */
export async function liveJob(deps: LiveJobDependencies, row: JobRow): Promise<Job> {
  const job = toJob(row);
  if (!mayWait(row)) return job;
  try {
    const deadline = Date.now() + BRIDGE_DEADLINE_MS;
    return {
      ...job,
      waiting: await deps.temporal.withDeadline(deadline, () => askWorkflow(deps.temporal, row)),
    };
  } catch (error) {
    deps.logger.debug({ jobId: row.id, err: error }, 'workflow not asked why the job waits; the row tells');
    return job;
  }
}

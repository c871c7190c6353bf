import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { arrayFromPayloads } from '@temporalio/common';
import type { Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import { InsufficientCreditsError } from '../db/credit-repository.js';
import { IllegalTransitionError, requeueFailedJob } from '../db/job-repository.js';
import type { Database, JobRow } from '../db/schema.js';
import { findUser } from '../db/user-repository.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { jobChangeContextFrom } from '../job-changes/job-change-context.js';
import { JobStatus } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import { planNamed } from '../jobs/plans.js';
import { decodePayloads } from '../temporal-client.js';
import type { GenerationInput } from '../workflows/definitions.js';
import type { runGeneration } from '../workflows/index.js';
import { ApiError, insufficientCredits } from './api-error.js';
import { jobWorkflowOptions } from './job-workflow-options.js';

export interface RetryDependencies {
  db: Kysely<Database>;
  temporal: Client;
  logger: Logger;
  config: Pick<Config, 'temporal' | 'plans' | 'webhooks'>;
}

/** The job's last run, if Temporal still keeps it (closed runs: for the namespace's retention period). */
async function describeLastRun(handle: WorkflowHandle): Promise<WorkflowExecutionDescription | undefined> {
  try {
    return await handle.describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return undefined;
    throw error;
  }
}

/** The input the last run started with: only Temporal has it (the job table keeps the prompt's hash). */
async function lastRunInput(temporal: Client, handle: WorkflowHandle): Promise<GenerationInput> {
  const history = await handle.fetchHistory();
  const encoded = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
  // A history holds payloads as stored: encrypted ones go through the codec before the converter.
  const converter = temporal.options.loadedDataConverter;
  const [input] = arrayFromPayloads(converter.payloadConverter, await decodePayloads(converter, encoded));
  if (input === undefined) throw new Error(`workflow ${handle.workflowId} has no start input`);
  return input as GenerationInput;
}

function notFailed(status: JobStatus | undefined): ApiError {
  return new ApiError('job_not_failed', `only a failed job can be retried; this one is ${status}`, {
    status,
  });
}

async function requeue(db: Kysely<Database>, row: JobRow): Promise<JobRow> {
  try {
    return await requeueFailedJob(db, row.id);
  } catch (error) {
    // Another retry re-queued it first.
    if (error instanceof IllegalTransitionError) throw notFailed(error.from);
    if (!(error instanceof InsufficientCreditsError)) throw error;
    throw insufficientCredits(error);
  }
}

async function startNextRun(deps: RetryDependencies, row: JobRow, input: GenerationInput): Promise<void> {
  const user = await findUser(deps.db, row.user_id);
  const plan = planNamed(deps.config.plans, user?.plan ?? deps.config.plans.defaultPlan);
  try {
    // A new run of the same workflow id, allowed only because the last one failed: the old run's history
    // stays beside it, and two retries at once start one run.
    await deps.temporal.workflow.start<typeof runGeneration>('runGeneration', {
      ...jobWorkflowOptions(row, plan, deps.config.temporal.taskQueue),
      args: [input],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
    });
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
  }
}

/**
 * Re-runs a failed job under its own id: the row goes back to `queued` (a new event; seq keeps counting)
 * with its cost reserved again, then a new run of its workflow starts with the input the job was
 * submitted with. Its deadlines count from the retry.
 */
export async function retryFailedJob(deps: RetryDependencies, found: JobRow): Promise<JobRow> {
  const handle = deps.temporal.workflow.getHandle(found.workflow_id);
  const lastRun = await describeLastRun(handle);
  // A row left `queued` by a retry that crashed before its start: the last run is still the failed one.
  const resumable = found.status === JobStatus.queued && lastRun?.status.name === 'FAILED';
  if (found.status !== JobStatus.failed && !resumable) throw notFailed(found.status);
  // Checked first, so that a job whose run Temporal has forgotten is refused before anything changes.
  if (!lastRun) {
    throw new ApiError('history_unavailable', 'Temporal no longer keeps the run this job would retry');
  }
  // The row says failed a moment before its run closes (it still hands its user's slot on).
  if (lastRun.status.name === 'RUNNING') {
    throw new ApiError('run_closing', 'the failed run is still closing; retry in a moment');
  }
  const input = await lastRunInput(
    deps.temporal,
    deps.temporal.workflow.getHandle(lastRun.workflowId, lastRun.runId),
  );
  const row = found.status === JobStatus.failed ? await requeue(deps.db, found) : found;
  await startNextRun(deps, row, input);
  await afterJobChange(jobChangeContextFrom(deps), { row });
  return row;
}

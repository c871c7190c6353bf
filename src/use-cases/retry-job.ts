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
import type { ProviderRegistry } from '../providers/provider-registry.js';
import { decodePayloads } from '../temporal-client.js';
import type { GenerationInput } from '../workflows/definitions.js';
import type { runGeneration } from '../workflows/index.js';
import { insufficientCredits, type InsufficientCredits } from './insufficient-credits.js';
import { jobWorkflowOptions } from './job-workflow-options.js';

export interface RetryDependencies {
  db: Kysely<Database>;
  temporal: Client;
  /** What this deployment can call: a retry's run would use the job's provider and model again. */
  providers: ProviderRegistry;
  logger: Logger;
  config: Pick<Config, 'temporal' | 'plans' | 'webhooks'>;
}

/** Why a retry was refused; nothing changed. */
export type RetryRefusal =
  /** Only a failed job can be retried; `status` is what it is (none: its row is gone). */
  | { kind: 'refused'; reason: 'job_not_failed'; status: JobStatus | undefined }
  /** Temporal no longer keeps the run the retry would start again from. */
  | { kind: 'refused'; reason: 'history_unavailable' }
  /** The row says failed, but its run has not closed yet. */
  | { kind: 'refused'; reason: 'run_closing' }
  /** The job's provider, or its model, is not configured here (any more): the run could never call it. */
  | { kind: 'refused'; reason: 'provider_not_configured'; provider: string; model: string }
  | InsufficientCredits;

/** A retry that went ahead returns the re-queued row. */
export type RetryOutcome = { kind: 'retried'; row: JobRow } | RetryRefusal;

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

function notFailed(status: JobStatus | undefined): RetryRefusal {
  return { kind: 'refused', reason: 'job_not_failed', status };
}

/** Refuses a job whose provider or model this deployment does not offer: its run could never call it. */
function unconfiguredProvider(providers: ProviderRegistry, row: JobRow): RetryRefusal | undefined {
  const { kind, provider, model } = row;
  if (providers.resolveModel(kind, provider, model) === model) return undefined;
  return { kind: 'refused', reason: 'provider_not_configured', provider, model };
}

async function requeue(db: Kysely<Database>, row: JobRow): Promise<RetryOutcome> {
  try {
    return { kind: 'retried', row: await requeueFailedJob(db, row.id) };
  } catch (error) {
    // Another retry re-queued it first.
    if (error instanceof IllegalTransitionError) return notFailed(error.from);
    if (!(error instanceof InsufficientCreditsError)) throw error;
    return insufficientCredits(error);
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
export async function retryFailedJob(deps: RetryDependencies, found: JobRow): Promise<RetryOutcome> {
  const handle = deps.temporal.workflow.getHandle(found.workflow_id);
  const lastRun = await describeLastRun(handle);
  // A row left `queued` by a retry that crashed before its start: the last run is still the failed one.
  const resumable = found.status === JobStatus.queued && lastRun?.status.name === 'FAILED';
  if (found.status !== JobStatus.failed && !resumable) return notFailed(found.status);
  const unconfigured = unconfiguredProvider(deps.providers, found);
  if (unconfigured) return unconfigured;
  // Checked first, so that a job whose run Temporal has forgotten is refused before anything changes.
  if (!lastRun) return { kind: 'refused', reason: 'history_unavailable' };
  // The row says failed a moment before its run closes (it still hands its user's slot on).
  if (lastRun.status.name === 'RUNNING') return { kind: 'refused', reason: 'run_closing' };
  const input = await lastRunInput(
    deps.temporal,
    deps.temporal.workflow.getHandle(lastRun.workflowId, lastRun.runId),
  );
  const requeued: RetryOutcome =
    found.status === JobStatus.failed ? await requeue(deps.db, found) : { kind: 'retried', row: found };
  if (requeued.kind === 'refused') return requeued;
  await startNextRun(deps, requeued.row, input);
  await afterJobChange(jobChangeContextFrom(deps), { row: requeued.row });
  return requeued;
}

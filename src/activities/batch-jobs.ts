import { Context } from '@temporalio/activity';
import {
  batchMemberState,
  joinBatchPool,
  leaveBatchPool,
  type BatchMemberState,
} from '../db/batch-repository.js';
import { findJob, recordTierChange, transitionJob } from '../db/job-repository.js';
import { markWorkflowSeen } from '../db/orphan-job-repository.js';
import type { JobRow } from '../db/schema.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { JobStatus, ServiceTier, type TokenUsage } from '../jobs/job.js';
import type { BatchLine } from '../providers/batch-provider.js';
import { resultKeyFor } from '../storage/job-object-keys.js';
import type { StoredObject } from '../storage/object-store.js';
import { batchLineJoinedSignal, batchPoolWorkflowId, type BatchPoolInput } from '../workflows/definitions.js';
import { jobChangeContextOf, type ActivityDependencies } from './dependencies.js';
import { jobTableFailure } from './temporal-failure.js';

export interface JoinProviderBatchInput {
  jobId: string;
  provider: string;
  line: BatchLine;
}

/** A batch job's result, kept at its result key by its batch's settlement, and what its line used. */
export interface BatchResult {
  output: StoredObject;
  usage: TokenUsage;
}

/**
 * A batch job's side of the batch tier, run by its own workflow as local activities: every one is a
 * job-table or pool write that is safe to repeat at any later point of the job.
 */
export function createBatchJobActivities(deps: ActivityDependencies) {
  const { db, store, logger, taskQueue } = deps;

  /** Starts the pool of `provider:model` if it is not running, and tells it a line joined. */
  async function wakePool(provider: string, model: string): Promise<void> {
    await Context.current().client.workflow.signalWithStart('poolProviderBatches', {
      workflowId: batchPoolWorkflowId(taskQueue, provider, model),
      taskQueue,
      args: [{ provider, model } satisfies BatchPoolInput],
      signal: batchLineJoinedSignal,
    });
  }

  /** A write of the job's row, then what follows it (events out, deliveries); none when nothing was written. */
  async function changed(jobId: string, write: () => Promise<JobRow | undefined>) {
    const row = await write().catch((error: unknown) => {
      throw jobTableFailure(error, logger, jobId);
    });
    if (row) await afterJobChange(jobChangeContextOf(deps), { row });
  }

  return {
    /**
     * Pools the job's line for a batch of its provider and model, and wakes the pool. Repeated while
     * the line waits: a pool that ended, or a wake-up lost, costs a delay, never the job. The orphan
     * sweep passes the job by from now on, as it does a job asking for admission.
     */
    async joinProviderBatch({ jobId, provider, line }: JoinProviderBatchInput): Promise<BatchMemberState> {
      const job = await findJob(db, jobId);
      if (!job) throw new Error(`job ${jobId} has no row`);
      // An operator's retry of a job whose last run left the tier runs it in the batch tier again.
      if (job.tier !== ServiceTier.batch) {
        await changed(jobId, () => recordTierChange(db, jobId, ServiceTier.batch));
      }
      await joinBatchPool(db, { jobId, workflowId: job.workflow_id, provider, line });
      await markWorkflowSeen(db, jobId);
      const state = (await batchMemberState(db, jobId)) ?? { stage: 'pooled', outcome: null };
      if (state.stage === 'pooled') await wakePool(provider, line.model);
      return state;
    },
    async batchMemberState(jobId: string): Promise<BatchMemberState | undefined> {
      return batchMemberState(db, jobId);
    },
    /** `left`: the line was taken back before its batch was sealed; `staying`: it is in the file. */
    async leaveProviderBatch(jobId: string): Promise<'left' | 'staying'> {
      return leaveBatchPool(db, jobId);
    },
    /** The job's batch was sent: the provider has its line, and the job is `running`. */
    async startBatchLine(jobId: string): Promise<void> {
      await changed(jobId, () => transitionJob(db, jobId, JobStatus.running, { started_at: new Date() }));
    },
    /**
     * The job enters `storing` with the result its batch's settlement kept at its key, and the usage
     * the provider billed for its line.
     */
    async takeBatchResult(jobId: string): Promise<BatchResult> {
      const [output, state] = await Promise.all([
        store.stat(resultKeyFor(jobId)),
        batchMemberState(db, jobId),
      ]);
      const outcome = state?.outcome;
      if (!output || outcome?.outcome !== 'succeeded') {
        throw new Error(`job ${jobId}: its batch line succeeded, but no result is kept`);
      }
      const usage = { ...outcome.usage, estimated: false };
      await changed(jobId, () => transitionJob(db, jobId, JobStatus.storing, { progress: 100, usage }));
      return { output, usage: outcome.usage };
    },
    /** The job leaves the batch tier for a call of its own (its `onBatchMiss`), with an event. */
    async leaveBatchTier(jobId: string): Promise<void> {
      await changed(jobId, () => recordTierChange(db, jobId, ServiceTier.standard));
    },
  };
}

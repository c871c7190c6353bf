import { Context } from '@temporalio/activity';
import {
  batchMembers,
  findProviderBatch,
  formProviderBatch,
  recordProviderBatch,
  recordProviderState,
  sealProviderBatch,
  settleBatchMembers,
  type BatchMemberRow,
  type PoolStep,
} from '../db/batch-repository.js';
import type { BatchMemberOutcome } from '../db/schema.js';
import { FailureCode } from '../jobs/job.js';
import { ENDED_BATCH_STATES, type TextBatchProvider } from '../providers/batch-provider.js';
import { ProviderError } from '../providers/provider-error.js';
import { resultKeyFor } from '../storage/job-object-keys.js';
import { wakeWorkflows } from '../job-changes/wake-workflows.js';
import { batchChangedSignal } from '../workflows/definitions.js';
import type { ActivityDependencies } from './dependencies.js';
import { TEXT_CONTENT_TYPE } from './provider-generation.js';
import { toTemporalFailure } from './temporal-failure.js';

export interface ProviderBatchRef {
  batchId: string;
  provider: string;
}

/** What the pool does next, and, for a batch it formed, how often that batch is polled. */
export type PoolNext = PoolStep & { pollSeconds: number };

/** `submitted`: the provider has the batch; `settled`: it ended before (empty, or refused whole). */
export type SubmitOutcome = 'submitted' | 'settled';

/**
 * The batch tier's side of the provider: forming batches from pooled lines, sending them, following
 * them and settling each line for its job. Each is safe to repeat: a batch is created once per Kiln
 * batch id (found by its metadata on a repeat), and what a settlement writes is written once.
 */
export function createProviderBatchActivities(deps: ActivityDependencies) {
  const { db, store, providers, logger, batches } = deps;

  function batchApi(provider: string): TextBatchProvider {
    const api = providers.batch(provider);
    if (!api) throw new Error(`provider ${provider} offers no batches here`);
    return api;
  }

  /** Tells each member's workflow its batch changed. */
  async function wakeMembers(members: readonly Pick<BatchMemberRow, 'workflow_id'>[]): Promise<void> {
    const ids = members.map((member) => member.workflow_id);
    await wakeWorkflows({ temporal: Context.current().client, logger }, ids, batchChangedSignal);
  }

  /** Every member's line ends `failed` with the provider's refusal of the whole batch. */
  async function refuseWhole(batchId: string, members: BatchMemberRow[], refusal: ProviderError) {
    const { code, message, retryable } = refusal;
    const outcomes = new Map<string, BatchMemberOutcome>(
      members.map((member) => [
        member.job_id,
        { jobId: member.job_id, outcome: 'failed', code, message, retryable },
      ]),
    );
    await settleBatchMembers(db, batchId, outcomes);
    logger.warn({ batchId, code, message }, 'provider refused a batch');
    await wakeMembers(members);
  }

  return {
    async formProviderBatch({ provider, model }: { provider: string; model: string }): Promise<PoolNext> {
      const step = await formProviderBatch(db, { provider, model, ...batches });
      return { ...step, pollSeconds: batches.pollSeconds };
    },
    /**
     * Seals the batch (no member leaves it after this), uploads its lines and creates the provider's
     * batch of them, then tells its members. A refusal of the whole (bad credentials, a file refused)
     * settles every line failed; anything retryable is retried by Temporal.
     */
    async submitProviderBatch({ batchId, provider }: ProviderBatchRef): Promise<SubmitOutcome> {
      const { batch, members } = await sealProviderBatch(db, batchId);
      if (batch.status === 'settled') return 'settled';
      if (members.length === 0) {
        await settleBatchMembers(db, batchId, new Map());
        return 'settled';
      }
      const api = batchApi(provider);
      try {
        const lines = members.flatMap((member) => (member.line ? [member.line] : []));
        const fileId = batch.input_file_id ?? (await api.uploadLines(batchId, lines));
        const created = await api.findOrCreateBatch(batchId, fileId);
        await recordProviderBatch(db, batchId, fileId, created);
        logger.info({ batchId, providerBatchId: created.id, lines: lines.length }, 'batch sent');
      } catch (error) {
        if (error instanceof ProviderError && !error.retryable) {
          await refuseWhole(batchId, members, error);
          return 'settled';
        }
        throw toTemporalFailure(error);
      }
      await wakeMembers(members);
      return 'submitted';
    },
    /** Whether the provider's batch has ended (its files are final); records where it stands. */
    async pollProviderBatch({ batchId, provider }: ProviderBatchRef): Promise<boolean> {
      const batch = await findProviderBatch(db, batchId);
      if (!batch?.provider_batch_id) throw new Error(`batch ${batchId} was not sent`);
      const state = await batchApi(provider)
        .retrieveBatch(batch.provider_batch_id)
        .catch((error: unknown) => {
          throw toTemporalFailure(error);
        });
      await recordProviderState(db, batchId, state);
      return ENDED_BATCH_STATES.includes(state.state);
    },
    /**
     * Reads how each line ended, keeps each written line's text at its job's result key, records every
     * outcome (and drops the prompts) in one transaction, then wakes the members.
     */
    async settleProviderBatch({ batchId, provider }: ProviderBatchRef): Promise<void> {
      const [batch, members] = await Promise.all([findProviderBatch(db, batchId), batchMembers(db, batchId)]);
      if (!batch?.provider_batch_id) throw new Error(`batch ${batchId} was not sent`);
      if (batch.status !== 'settled') {
        const api = batchApi(provider);
        const outcomes = await api
          .retrieveBatch(batch.provider_batch_id)
          .then((ended) =>
            api.readOutcomes(
              ended,
              members.map((member) => member.job_id),
            ),
          )
          .catch((error: unknown) => {
            throw toTemporalFailure(error);
          });
        const kept = new Map<string, BatchMemberOutcome>();
        for (const line of outcomes) {
          if (line.outcome === 'succeeded') {
            const { text, ...rest } = line;
            await store.put(resultKeyFor(line.jobId), new TextEncoder().encode(text), TEXT_CONTENT_TYPE);
            kept.set(line.jobId, rest);
          } else {
            kept.set(line.jobId, line);
          }
        }
        await settleBatchMembers(db, batchId, kept);
        logger.info({ batchId, lines: outcomes.length }, 'batch settled');
      }
      await wakeMembers(members);
    },
    /**
     * A batch given up on: each line ends `failed`. Unsent (retried past its limit): retryable, and
     * each job moves on as its `onBatchMiss` says. Sent but no longer followed (the provider refused
     * a poll or its files): not retryable, since the provider may have billed its lines, and a job is
     * paid for once.
     */
    async abandonProviderBatch(input: { batchId: string; message: string; sent: boolean }): Promise<void> {
      const { batchId, message, sent } = input;
      const members = await batchMembers(db, batchId);
      const code = sent ? FailureCode.invalidOutput : FailureCode.providerUnavailable;
      await refuseWhole(batchId, members, new ProviderError(code, message, !sent));
    },
  };
}

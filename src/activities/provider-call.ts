import { Context } from '@temporalio/activity';
import {
  providerCapacity,
  type ProviderCapacity,
  type SlotWaitReason,
} from '../capacity/provider-capacity.js';
import type { HeldSlot } from '../capacity/provider-slot.js';
import {
  findJob,
  recordProviderTask,
  recordWaiting,
  startProviderCall,
  transitionJob,
} from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { promptTokenBound } from '../jobs/token-pricing.js';
import {
  FailureCode,
  JobStatus,
  WaitReason,
  type GenerationRequest,
  type JobUsage,
  type TokenUsage,
} from '../jobs/job.js';
import { countOutputReused, observeProviderCall } from '../observability/job-metrics.js';
import { providerAuthFailures } from '../observability/metrics.js';
import { ProviderError } from '../providers/provider-error.js';
import { resultKeyFor } from '../storage/job-object-keys.js';
import type { StoredObject } from '../storage/object-store.js';
import { jobChangeContextOf, type ActivityDependencies } from './dependencies.js';
import {
  callableProvider,
  createProviderGeneration,
  heartbeatingWhile,
  type CallableProvider,
  type CallHeartbeat,
  type GenerationAsk,
  type Output,
} from './provider-generation.js';
import { jobTableFailure, toTemporalFailure } from './temporal-failure.js';

export interface CallProviderInput extends GenerationAsk {
  /**
   * The job's call before this one failed, and may have left a task the provider still runs (a poll
   * that failed, not the task): this call looks for it in the job row, as a retried attempt does.
   */
  afterFailedCall?: boolean;
  /**
   * The job has a fallback to move on to: an open circuit is told at once, before waiting for (and
   * spending) one of the dead provider's slots, and ends a wait for one.
   */
  canMoveOn?: boolean;
}

/**
 * Either the output, kept at the job's result key with the job `storing`, for `storeResultAndSucceed`;
 * or word to wait, and what for (the breaker, a pause, full slots): no call was made. Workers of
 * release 0.1.0 give no reason.
 */
export type CallProviderOutcome =
  | { kind: 'generated'; output: StoredObject; usage?: JobUsage }
  | { kind: 'waiting'; retryInMs: number; reason?: WaitReason };
type Generated = Extract<CallProviderOutcome, { kind: 'generated' }>;

/** One call as it runs: what it calls, under which share of capacity and slot, resuming which task. */
interface Call {
  input: CallProviderInput;
  callable: CallableProvider;
  capacity: ProviderCapacity;
  slot: HeldSlot;
  resumeTaskId: string | undefined;
}

/**
 * What a text call's output used: the provider's count, or when an attempt that found the output kept
 * lost it, bounds from above (a token is at least a byte). None for images.
 */
function usageOf(request: GenerationRequest, output: StoredObject, reported?: TokenUsage): JobUsage | null {
  if (request.kind !== 'text') return null;
  if (reported) return { ...reported, estimated: false };
  const outputTokens = Math.min(output.byteSize, request.maxTokens ?? output.byteSize);
  return { inputTokens: promptTokenBound(request.prompt), outputTokens, estimated: true };
}

export function createProviderActivities(deps: ActivityDependencies) {
  const { db, store, providers, logger } = deps;

  /**
   * What follows a change the call made. A failure does not touch the paid call: what stays unstarted
   * goes with the job's next change.
   */
  async function afterCallChange(row: JobRow): Promise<void> {
    await afterJobChange(jobChangeContextOf(deps), { row }).catch((error: unknown) =>
      logger.warn({ jobId: row.id, err: error }, 'job change effects failed'),
    );
  }

  const { generate } = createProviderGeneration(deps, afterCallChange);

  /** A task accepted before a crash: from the last heartbeat, or from Postgres if that heartbeat was lost. */
  async function taskToResume({ jobId, afterFailedCall }: CallProviderInput): Promise<string | undefined> {
    const { info } = Context.current();
    const fromHeartbeat = (info.heartbeatDetails as CallHeartbeat | undefined)?.taskId;
    if (fromHeartbeat || (info.attempt === 1 && !afterFailedCall)) return fromHeartbeat;
    return (await findJob(db, jobId))?.provider_task_id ?? undefined;
  }

  /**
   * The job enters `storing` with its output kept, its provider task done with. An attempt Temporal gave
   * up on may get here after the job went on without it: once the job has ended other than succeeded,
   * it keeps no output, and the attempt removes it rather than leave it for good. A succeeded job's
   * result is this same key, and stays. The first attempt to get here writes the call's usage; the
   * outcome carries the one written.
   */
  async function enterStoring(
    { jobId, request }: CallProviderInput,
    output: StoredObject,
    reported?: TokenUsage,
    known?: JobRow,
  ): Promise<Generated> {
    const storing = { progress: 100, provider_task_id: null, usage: usageOf(request, output, reported) };
    const row = await transitionJob(db, jobId, JobStatus.storing, storing, known).catch((error: unknown) => {
      throw jobTableFailure(error, logger, jobId);
    });
    await afterCallChange(row);
    if (row.status === JobStatus.storing || row.status === JobStatus.succeeded) {
      return { kind: 'generated', output, ...(row.usage && { usage: row.usage }) };
    }
    await store.delete(output.key);
    throw new Error(`job ${jobId} is ${row.status}: this call's output was discarded`);
  }

  /**
   * An attempt whose completion was lost (its worker died after writing the output, or Temporal
   * restarted) leaves the paid output at the result key: the retried attempt takes it rather than pay
   * for another. A first attempt has no earlier one, and is spared the lookup.
   */
  async function keptByLostAttempt(input: CallProviderInput): Promise<Generated | undefined> {
    if (Context.current().info.attempt === 1) return undefined;
    const output = await store.stat(resultKeyFor(input.jobId));
    return output && reused(input, await enterStoring(input, output));
  }

  /**
   * A call that waits for a slot in place tells the job table why, unless the workflow did not say
   * which call it is. The wait goes on whether or not the write lands.
   */
  async function tellWaiting({ jobId, budget }: CallProviderInput, reason: WaitReason, retryInMs: number) {
    if (!budget) return;
    const now = Date.now();
    const waiting = {
      reason,
      since: new Date(now).toISOString(),
      until: new Date(now + retryInMs).toISOString(),
      ...budget,
    };
    const row = await recordWaiting(db, jobId, waiting).catch((error: unknown) => {
      logger.warn({ jobId, err: error }, 'why the job waits not recorded');
      return undefined;
    });
    if (row) await afterCallChange(row);
  }

  /** An earlier attempt's output answers this call: no provider call is made. */
  function reused({ jobId, request }: CallProviderInput, outcome: Generated): Generated {
    countOutputReused(request);
    logger.info({ jobId, key: outcome.output.key }, 'provider call answered by an earlier attempt');
    return outcome;
  }

  /**
   * The job went on to `storing` after this attempt looked for an earlier one's output: that attempt,
   * lost to Temporal but not yet done, kept it meanwhile.
   */
  async function keptMeanwhile(input: CallProviderInput): Promise<Generated> {
    const output = await store.stat(resultKeyFor(input.jobId));
    if (!output) throw new Error(`job ${input.jobId} is past its call, and its result key holds nothing`);
    const usage = (await findJob(db, input.jobId))?.usage;
    return reused(input, { kind: 'generated', output, ...(usage && { usage }) });
  }

  /**
   * The job enters `running` for this call, whose number it counts; the call's log fields. Nothing,
   * when the job is past its call already.
   */
  async function startCall({ input, callable, resumeTaskId }: Call, probe: boolean) {
    const { jobId } = input;
    const row = await startProviderCall(db, jobId, resumeTaskId === undefined).catch((error: unknown) => {
      throw jobTableFailure(error, logger, jobId);
    });
    if (!row) return undefined;
    await afterCallChange(row);
    // `call` is the job's provider call number; `attempt` in every activity line is Temporal's.
    const log = { jobId, provider: callable.provider.name, call: row.attempts, resumeTaskId, probe };
    logger.info(log, 'provider call started');
    return { row, log };
  }

  /**
   * The answer goes to the job's result key, where the first write wins: an output an earlier attempt
   * wrote is taken instead of this one, both being paid for already. `known` is the row as the call's
   * start wrote it.
   */
  async function keep(input: CallProviderInput, output: Output, known: JobRow): Promise<Generated> {
    const kept = await store.put(resultKeyFor(input.jobId), output.bytes, output.contentType);
    return enterStoring(input, kept, output.usage, known);
  }

  /** What a failed call tells the fleet (pauses, the breaker) and the job (its task is gone). */
  async function onFailure({ input, callable, capacity }: Call, error: unknown, hadTask: boolean) {
    if (!(error instanceof ProviderError)) return;
    await capacity.failed(error);
    // The task failed: the next call must submit anew, not resume it. A failed poll leaves the task
    // running (and billed), so the next call resumes it instead of paying for another.
    if (hadTask && !error.taskLivesOn) await recordProviderTask(db, input.jobId, null);
    if (error.code === FailureCode.authentication) {
      const { jobId } = input;
      const provider = callable.provider.name;
      providerAuthFailures.inc({ provider });
      logger.error({ jobId, provider }, 'provider rejected our credentials: calls fail until fixed');
    }
  }

  /**
   * The call itself, once it holds a slot: permit → running → generate (verified) → keep. Resuming a
   * task the provider already accepted is no new call: the breaker is not asked.
   */
  async function callHoldingSlot(call: Call): Promise<CallProviderOutcome> {
    const { input, capacity, resumeTaskId } = call;
    const permit = resumeTaskId ? undefined : await capacity.permit();
    if (permit?.granted === false) {
      return { kind: 'waiting', retryInMs: permit.retryInMs, reason: WaitReason.circuitOpen };
    }
    const probe = permit?.probe ?? false;
    const started = await startCall(call, probe);
    if (!started) return keptMeanwhile(input);
    const { row, log } = started;
    // Labelled by the entry called, which a fallback makes another than the one the row was submitted for.
    const { provider, model } = input.request;
    const callMetrics = observeProviderCall(
      { provider, model, attempts: row.attempts },
      {
        isNew: resumeTaskId === undefined,
        afterLostAttempt: Context.current().info.attempt > 1,
      },
    );
    const heartbeat: CallHeartbeat = { taskId: resumeTaskId };
    try {
      // Keeping too: a store slower than the heartbeat timeout must not have the attempt given up on.
      return await heartbeatingWhile(heartbeat, async (): Promise<CallProviderOutcome> => {
        const output = await generate(call.callable, input, heartbeat, row.attempts);
        callMetrics.ended();
        // The provider is done with: the slot goes to the next call before the output is kept.
        await call.slot.release();
        // Kept first: an output lost to a failure after it (the database down) is paid for again.
        const kept = await keep(input, output, row);
        // The breaker's reset and the quota's pause wait for the next call if their write fails now.
        await capacity.answered(permit, output.quota).catch((error: unknown) => {
          logger.warn({ ...log, err: error }, 'provider health after the call not recorded');
        });
        logger.info({ ...log, bytes: output.bytes.byteLength }, 'provider call finished');
        return kept;
      });
    } catch (error) {
      // Whatever the client library threw on abort, Temporal must see the cancellation itself.
      const { cancellationSignal } = Context.current();
      if (cancellationSignal.aborted) throw cancellationSignal.reason;
      callMetrics.ended(error);
      logger.warn({ ...log, err: error }, 'provider call failed');
      await onFailure(call, error, heartbeat.taskId !== undefined);
      throw toTemporalFailure(error, { probe });
    }
  }

  /** The provider's circuit, while it cools down, as word to wait: what moves a job with a fallback on. */
  async function openCircuit(capacity: ProviderCapacity): Promise<CallProviderOutcome | undefined> {
    const openForMs = await capacity.circuitOpenForMs();
    return openForMs === undefined
      ? undefined
      : { kind: 'waiting', retryInMs: openForMs, reason: WaitReason.circuitOpen };
  }

  /**
   * A call slot, or word to wait and why. A job that watches the circuit stops waiting for one when the
   * circuit opens meanwhile: it has somewhere else to go.
   */
  async function slotFor(
    input: CallProviderInput,
    capacity: ProviderCapacity,
    resumeTaskId: string | undefined,
    watchesCircuit: boolean,
  ): Promise<HeldSlot | { outcome: CallProviderOutcome }> {
    const heartbeat = () => Context.current().heartbeat({ taskId: resumeTaskId } satisfies CallHeartbeat);
    let reason: SlotWaitReason = WaitReason.providerSlot;
    const onWait = async (why: SlotWaitReason, retryInMs: number) => {
      reason = why;
      await tellWaiting(input, why, retryInMs);
    };
    const giveUp = watchesCircuit ? async () => (await openCircuit(capacity)) !== undefined : undefined;
    const slot = await capacity.acquireSlot(input.jobId, heartbeat, onWait, giveUp);
    if ('release' in slot) return slot;
    const open = watchesCircuit ? await openCircuit(capacity) : undefined;
    return { outcome: open ?? { kind: 'waiting', retryInMs: slot.retryInMs, reason } };
  }

  return {
    /**
     * The paid call, within the provider's fleet-wide slots and behind its shared circuit breaker.
     * Heartbeats while in flight so that a dead worker is noticed within the heartbeat timeout and the
     * call resumed or retried elsewhere.
     */
    async callProvider(input: CallProviderInput): Promise<CallProviderOutcome> {
      const { request } = input;
      const kept = await keptByLostAttempt(input);
      if (kept) return kept;
      const callable = callableProvider(providers, request);
      const capacity = providerCapacity(deps, callable.provider.name, request.model);
      const resumeTaskId = await taskToResume(input);
      // A task to resume is no new call: the breaker is not asked, and the job does not move on.
      const watchesCircuit = input.canMoveOn === true && resumeTaskId === undefined;
      const open = watchesCircuit ? await openCircuit(capacity) : undefined;
      if (open) return open;
      const slot = await slotFor(input, capacity, resumeTaskId, watchesCircuit);
      if (!('release' in slot)) return slot.outcome;
      try {
        return await callHoldingSlot({ input, callable, capacity, slot, resumeTaskId });
      } finally {
        await slot.release();
      }
    },
  };
}

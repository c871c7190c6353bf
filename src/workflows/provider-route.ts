import type { StreamedTextCharge } from '../activities/job-table.js';
import { creditsForUsage, estimatedTokens, type TokenPricing } from '../jobs/token-pricing.js';
import type { ProviderFailure } from '../jobs/failures.js';
import {
  FailureCode,
  SwitchReason,
  WaitReason,
  type GenerationRequest,
  type TokenUsage,
} from '../jobs/job.js';
import { jobTable } from './activity-stubs.js';
import type { GenerationInput, RouteEntry } from './definitions.js';

/**
 * Where a job stands on its fallback chain: the entry it calls, and whether that entry can still serve
 * it in time. A job without a chain has one entry, the provider it was submitted for, and never moves.
 * Only what is the provider's fault moves a job on; the request's own faults end it wherever it is.
 */
export class ProviderRoute {
  private index = 0;
  /** `provider_unavailable` and timeouts in a row on the entry called now. */
  private failuresInRow = 0;
  /**
   * The last call failed with the provider maybe still running (and billing) its task: the job stays
   * until a call resumes it to its end, whatever it waits for meanwhile.
   */
  private taskLivesOn = false;

  constructor(private readonly input: GenerationInput) {}

  private get entries(): readonly RouteEntry[] {
    return this.input.fallback?.entries ?? [];
  }

  /** Whether there is an entry left to move on to. */
  get canMoveOn(): boolean {
    return this.index + 1 < this.entries.length;
  }

  /** The request as the entry called now takes it: its provider and model, the parameters mapped. */
  get request(): GenerationRequest {
    const entry = this.entries[this.index];
    if (!entry) return this.input.request;
    const { provider, model, size, maxTokens } = entry;
    return { ...this.input.request, provider, model, size, maxTokens };
  }

  get taskQueue(): string {
    return this.entries[this.index]?.taskQueue ?? this.input.providerTaskQueue;
  }

  /** How the entry called now prices a job by its tokens; unset when it prices it per job. */
  get tokenPricing(): TokenPricing | undefined {
    const entry = this.entries[this.index];
    return entry ? entry.tokenPricing : this.input.tokenPricing;
  }

  /**
   * What the job is charged when the entry called now served it with `usage`: by the tokens, for a
   * usage-priced entry; else the entry's price; unset for a job without a chain priced per job (the
   * whole reservation).
   */
  settleFor(usage: TokenUsage | undefined): number | undefined {
    const pricing = this.tokenPricing;
    if (pricing && usage) return creditsForUsage(pricing, usage);
    return this.entries[this.index]?.cost;
  }

  /**
   * Whether the job moves on rather than wait `reason` until `untilMs`: an open circuit always; a pause
   * or a queue that outlasts `canWaitUntilMs` (the job's deadlines and retry budget).
   */
  afterWait(reason: WaitReason, untilMs: number, canWaitUntilMs: number): SwitchReason | undefined {
    if (!this.canMoveOn || this.taskLivesOn) return undefined;
    if (reason === WaitReason.circuitOpen) return SwitchReason.circuitOpen;
    if (untilMs <= canWaitUntilMs) return undefined;
    return reason === WaitReason.rateLimited ? SwitchReason.rateLimited : SwitchReason.startDeadline;
  }

  /**
   * Whether the job moves on after a failed call rather than retry here. Never while the provider may
   * still run the task the call had it accept: the next call resumes it, paid for once.
   */
  afterFailure(failure: ProviderFailure, untilMs: number, canWaitUntilMs: number): SwitchReason | undefined {
    const unavailable =
      failure.code === FailureCode.providerUnavailable || failure.code === FailureCode.timeout;
    this.failuresInRow = unavailable ? this.failuresInRow + 1 : 0;
    this.taskLivesOn = failure.taskLivesOn ?? false;
    if (!this.canMoveOn || this.taskLivesOn) return undefined;
    switch (failure.code) {
      case FailureCode.authentication:
        return SwitchReason.authentication;
      case FailureCode.rateLimited:
        return untilMs > canWaitUntilMs ? SwitchReason.rateLimited : undefined;
      default: {
        const threshold = this.input.fallback?.afterFailedCalls ?? Infinity;
        return unavailable && this.failuresInRow >= threshold ? SwitchReason.providerUnavailable : undefined;
      }
    }
  }

  /**
   * Whether the job moves on before it queues its next call: the entry's circuit is open, and the
   * provider's task queue, which hands calls out at the provider's rate whatever the circuit says,
   * would make it wait its turn only to hear so. Asked only where the job could move on.
   */
  async beforeCall(): Promise<SwitchReason | undefined> {
    if (!this.canMoveOn || this.taskLivesOn) return undefined;
    const openForMs = await jobTable.providerCircuitOpenForMs(this.request.provider);
    return openForMs === null ? undefined : SwitchReason.circuitOpen;
  }

  /** Moves on to the next entry, which the job table and every watcher hear of first. */
  async switchFor(reason: SwitchReason): Promise<void> {
    const from = this.request;
    this.index += 1;
    this.failuresInRow = 0;
    const { provider, model, size } = this.request;
    const switched = { from: { provider: from.provider, model: from.model }, reason };
    const servedBy = { provider, model, size, entry: this.index, switched };
    await jobTable.recordProviderSwitch({ jobId: this.input.jobId, servedBy });
  }
}

/**
 * What a usage-priced text job pays for what its last call streamed if it ends without a result (see
 * markJobFailed); none for a job no entry of whose chain prices by tokens.
 */
export function streamedTextCharge(input: GenerationInput): StreamedTextCharge | undefined {
  const entries = input.fallback?.entries;
  const pricings = entries
    ? entries.map((entry) => entry.tokenPricing ?? null)
    : [input.tokenPricing ?? null];
  if (pricings.every((pricing) => pricing === null)) return undefined;
  return { pricings, promptTokens: estimatedTokens(input.request.prompt) };
}

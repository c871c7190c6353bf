import type { Config } from '../config/index.js';
import { ServiceTier, BatchMiss, DEFAULT_MAX_TOKENS, type GenerationRequest } from '../jobs/job.js';
import { promptTokenBound, tokenPriceOf, worstCaseCredits } from '../jobs/token-pricing.js';
import type { BatchTierInput } from '../workflows/definitions.js';

/** A batch job's workflow input, and what its line may cost at most. */
export interface BatchTier {
  input: BatchTierInput;
  worstCase: number;
}

/**
 * The batch tier of a request that asked for it, priced as of `at` (its submission): the batch prices
 * then in force for its model; `unpriced` when none are (the model's batch prices start later).
 */
export function batchTierOf(
  config: Pick<Config, 'costs' | 'batches'>,
  request: GenerationRequest,
  at: Date,
): BatchTier | 'unpriced' | undefined {
  if (request.tier !== ServiceTier.batch) return undefined;
  const price = tokenPriceOf(config.costs.tokens, request.provider, request.model, at);
  if (!price?.batch) return 'unpriced';
  const pricing = { since: price.since, ...price.batch, promptTokens: promptTokenBound(request.prompt) };
  return {
    input: {
      pricing,
      onMiss: request.onBatchMiss ?? BatchMiss.standard,
      windowSeconds: config.batches.windowSeconds,
    },
    worstCase: worstCaseCredits(pricing, request.maxTokens ?? DEFAULT_MAX_TOKENS),
  };
}

/**
 * What a job reserves: a batch job its line's worst case, and, if a miss may send it to the standard
 * tier, that tier's too, whichever is dearer.
 */
export function reserveFor(standardReserve: number, batch: BatchTier | undefined): number {
  if (!batch) return standardReserve;
  if (batch.input.onMiss === BatchMiss.fail) return batch.worstCase;
  return Math.max(batch.worstCase, standardReserve);
}

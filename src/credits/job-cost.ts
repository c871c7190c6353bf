import type { Config } from '../config/index.js';
import type { GenerationRequest } from '../jobs/job.js';

/**
 * Credits a job costs: the most specific of `provider:model:size`, `provider:model` and `provider` that
 * the configuration prices, else the default. Own keys only, so a provider named like an Object
 * prototype member (`constructor`) cannot price a job with a function.
 */
export function costOf(
  costs: Pick<Config['costs'], 'byKey' | 'fallback'>,
  request: Pick<GenerationRequest, 'provider' | 'model' | 'size'>,
): number {
  const { provider, model, size } = request;
  const sized = size === null ? [] : [`${provider}:${model}:${size}`];
  const key = [...sized, `${provider}:${model}`, provider].find((candidate) =>
    Object.hasOwn(costs.byKey, candidate),
  );
  return key === undefined ? costs.fallback : costs.byKey[key]!;
}

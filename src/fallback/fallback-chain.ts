import { limitKeyFor, providerTaskQueue } from '../capacity/provider-limits.js';
import { ConfigError, type Config, type FallbackEntry } from '../config/index.js';
import { costOf } from '../credits/job-cost.js';
import {
  promptTokenBound,
  tokenPriceOf,
  worstCaseCredits,
  type TokenPricing,
} from '../jobs/token-pricing.js';
import {
  JOB_KINDS,
  MAX_TOKENS_LIMIT,
  type GenerationRequest,
  type JobKind,
  type ProviderChoice,
} from '../jobs/job.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { FallbackRoute, RouteEntry } from '../workflows/definitions.js';

export type FallbackConfig = Pick<Config, 'fallback' | 'costs' | 'providerLimits' | 'temporal'>;

/** The kind a configured `provider:model` makes, if any. */
function kindOf(providers: ProviderRegistry, provider: string, model: string): JobKind | undefined {
  return JOB_KINDS.find((kind) => providers.models(kind, provider).includes(model));
}

/**
 * Refuses, at start, a chain that names a provider or model this deployment does not offer, or one of
 * another kind than the model it stands in for: a job would find out only when it needed the fallback.
 */
export function checkFallbackChains(chains: Config['fallback']['chains'], providers: ProviderRegistry): void {
  for (const [key, entries] of Object.entries(chains)) {
    const colon = key.indexOf(':');
    const kind = kindOf(providers, key.slice(0, colon), key.slice(colon + 1));
    if (!kind) throw new ConfigError(`FALLBACK_CHAINS: ${key} is no configured provider:model`);
    for (const { provider, model, sizes = {} } of entries) {
      const at = `FALLBACK_CHAINS: ${key} falls back on ${provider}:${model}`;
      if (!providers.models(kind, provider).includes(model)) {
        throw new ConfigError(`${at}, no configured ${kind} model`);
      }
      const offered: readonly string[] = providers.image(provider)?.models[model] ?? [];
      const unmade = Object.values(sizes).find((size) => !offered.includes(size));
      if (unmade) throw new ConfigError(`${at}, which makes no ${unmade} images`);
    }
  }
}

/** A configured equivalent, its parameters mapped; none when it cannot make what the request asks. */
function mappedChoice(
  providers: ProviderRegistry,
  request: GenerationRequest,
  entry: FallbackEntry,
): ProviderChoice | undefined {
  const { provider, model } = entry;
  if (request.size === null) {
    const maxTokens = request.maxTokens && Math.min(request.maxTokens, entry.maxTokens ?? request.maxTokens);
    return { provider, model, size: null, maxTokens };
  }
  const mapped = entry.sizes?.[request.size] ?? request.size;
  const size = providers.image(provider)?.models[model]?.find((offered) => offered === mapped);
  return size ? { provider, model, size, maxTokens: null } : undefined;
}

/** The providers a request falls back on: its own list, none, or the deployment's chain for its model. */
function fallbackChoices(
  providers: ProviderRegistry,
  chains: Config['fallback']['chains'],
  request: GenerationRequest,
): ProviderChoice[] {
  if (request.fallback !== undefined) return request.fallback || [];
  const chain = chains[`${request.provider}:${request.model}`] ?? [];
  return chain.flatMap((entry) => mappedChoice(providers, request, entry) ?? []);
}

/** The chain a job runs, the entry of the provider it was submitted for, and the credits it reserves. */
export interface ResolvedRoute {
  route: FallbackRoute | undefined;
  primary: RouteEntry;
  reserve: number;
}

/** A usage-priced text entry's pricing as of `at`; none for images and for models priced per job. */
function tokenPricingOf(
  config: FallbackConfig,
  choice: ProviderChoice,
  prompt: string,
  at: Date,
): TokenPricing | undefined {
  if (choice.size !== null) return undefined;
  const price = tokenPriceOf(config.costs.tokens, choice.provider, choice.model, at);
  return price && { ...price, promptTokens: promptTokenBound(prompt) };
}

function routeEntry(config: FallbackConfig, choice: ProviderChoice, prompt: string, at: Date): RouteEntry {
  const { provider, model, size, maxTokens } = choice;
  const limitKey = limitKeyFor(config.providerLimits, provider, model);
  const tokenPricing = tokenPricingOf(config, choice, prompt, at);
  return {
    provider,
    model,
    size,
    maxTokens,
    taskQueue: providerTaskQueue(config.temporal.taskQueue, limitKey),
    cost: tokenPricing
      ? worstCaseCredits(tokenPricing, maxTokens ?? MAX_TOKENS_LIMIT)
      : costOf(config.costs, choice),
    ...(tokenPricing && { tokenPricing }),
  };
}

/**
 * A request's fallback chain as its workflow runs it, its provider's entry (how it is priced), and what
 * the job reserves: the price of the dearest entry it may reach, since which one serves it is known
 * only at the end. Token prices are those in force at `at`, the submission.
 */
export function resolveFallbackRoute(
  config: FallbackConfig,
  providers: ProviderRegistry,
  request: GenerationRequest,
  at: Date,
): ResolvedRoute {
  const entryOf = (choice: ProviderChoice) => routeEntry(config, choice, request.prompt, at);
  const primary = entryOf(request);
  const fallbacks = fallbackChoices(providers, config.fallback.chains, request).map(entryOf);
  const entries = [primary, ...fallbacks];
  const reserve = Math.max(...entries.map((entry) => entry.cost));
  if (fallbacks.length === 0) return { route: undefined, primary, reserve };
  return { route: { entries, afterFailedCalls: config.fallback.afterFailedCalls }, primary, reserve };
}

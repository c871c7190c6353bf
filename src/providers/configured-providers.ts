import { ConfigError, type Config, type TokenPriceTable } from '../config/index.js';
import { checkFallbackChains } from '../fallback/fallback-chain.js';
import { createAnthropicTextProvider } from './anthropic-text-provider.js';
import { createFalProvider } from './fal-provider.js';
import { createGeminiProvider } from './gemini-provider.js';
import { createGeminiTextProvider } from './gemini-text-provider.js';
import { createLocalProvider } from './local-provider.js';
import { createLocalTextProvider } from './local-text-provider.js';
import { createOpenAIBatchProvider } from './openai-batch-provider.js';
import { createOpenAIProvider } from './openai-provider.js';
import { createOpenAITextProvider } from './openai-text-provider.js';
import type { ImageProvider, TextProvider } from './provider.js';
import { createProviderRegistry, type OfferedBatches, type ProviderRegistry } from './provider-registry.js';
import { createReplicateProvider } from './replicate-provider.js';

/** One HTTP request to a provider never outlives this, whatever the attempt timeout. */
const REQUEST_TIMEOUT_CAP_MS = 60_000;

/**
 * The providers this deployment offers: always `local`, the others when their keys are configured.
 * Throws a ConfigError for a fallback chain that names one it does not offer.
 */
export function configuredProviders(config: Config): ProviderRegistry {
  const providers: ImageProvider[] = [createLocalProvider(config.providers.local)];
  const textProviders: TextProvider[] = [createLocalTextProvider(config.providers.local)];
  const batchProviders: OfferedBatches[] = [];
  const attemptMs = config.timeouts.providerAttemptSeconds * 1000;
  const { openai, replicate } = config.providers;
  if (openai) {
    const options = { apiKey: openai.apiKey, baseURL: openai.baseURL, timeoutMs: attemptMs };
    providers.push(
      createOpenAIProvider({ ...options, imageUrlGuard: { allowPrivate: openai.imageUrlsAllowPrivate } }),
    );
    textProviders.push(createOpenAITextProvider({ ...options, models: openai.textModels }));
    const models = batchPricedModels(config.costs.tokens, 'openai', openai.textModels);
    if (models.length > 0) batchProviders.push({ provider: createOpenAIBatchProvider(options), models });
  }
  if (replicate) {
    providers.push(
      createReplicateProvider({
        apiToken: replicate.apiToken,
        baseURL: replicate.baseURL,
        pollIntervalMs: replicate.pollIntervalMs,
        requestTimeoutMs: Math.min(attemptMs, REQUEST_TIMEOUT_CAP_MS),
      }),
    );
  }
  const { anthropic } = config.providers;
  if (anthropic) {
    const { apiKey, baseURL, textModels: models } = anthropic;
    textProviders.push(createAnthropicTextProvider({ apiKey, baseURL, timeoutMs: attemptMs, models }));
  }
  const { fal } = config.providers;
  if (fal) {
    providers.push(
      createFalProvider({
        apiKey: fal.apiKey,
        baseURL: fal.baseURL,
        pollIntervalMs: fal.pollIntervalMs,
        requestTimeoutMs: Math.min(attemptMs, REQUEST_TIMEOUT_CAP_MS),
        imageUrlGuard: { allowPrivate: fal.imageUrlsAllowPrivate },
      }),
    );
  }
  const gemini = config.providers.gemini;
  if (gemini) {
    const options = { apiKey: gemini.apiKey, baseURL: gemini.baseURL, timeoutMs: attemptMs };
    providers.push(createGeminiProvider(options));
    textProviders.push(createGeminiTextProvider({ ...options, models: gemini.textModels }));
  }
  const registry = createProviderRegistry(providers, textProviders, batchProviders);
  // Checked here, where what is offered is first known: API and worker alike refuse to start.
  checkFallbackChains(config.fallback.chains, registry);
  checkTokenPrices(config.costs.tokens, registry);
  return registry;
}

/** The models the price table gives a batch price, on any day: only those are offered in batches. */
function batchPricedModels(table: TokenPriceTable, provider: string, models: readonly string[]): string[] {
  return models.filter((model) => {
    const key = `${provider}:${model}`;
    return Object.hasOwn(table, key) && table[key]!.some((price) => price.batch !== undefined);
  });
}

/** Refuses, at start, a token price for a model that is no configured text model: a typo prices nothing. */
function checkTokenPrices(table: TokenPriceTable, registry: ProviderRegistry): void {
  for (const key of Object.keys(table)) {
    const colon = key.indexOf(':');
    if (!registry.models('text', key.slice(0, colon)).includes(key.slice(colon + 1))) {
      throw new ConfigError(`TEXT_TOKEN_PRICES: ${key} is no configured text provider:model`);
    }
  }
}

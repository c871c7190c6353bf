import type { Config } from '../config.js';
import { createLocalProvider } from './local-provider.js';
import { createOpenAIProvider } from './openai-provider.js';
import type { ImageProvider } from './provider.js';
import { createProviderRegistry, type ProviderRegistry } from './provider-registry.js';

/** The providers this deployment offers: always `local`, `openai` when a key is configured. */
export function configuredProviders(config: Config): ProviderRegistry {
  const providers: ImageProvider[] = [createLocalProvider(config.providers.local)];
  const { openai } = config.providers;
  if (openai) {
    providers.push(
      createOpenAIProvider({
        apiKey: openai.apiKey,
        baseURL: openai.baseURL,
        timeoutMs: config.timeouts.providerAttemptSeconds * 1000,
      }),
    );
  }
  return createProviderRegistry(providers);
}

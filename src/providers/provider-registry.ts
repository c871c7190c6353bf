import type { ImageProvider } from './provider.js';

/** The providers this process can call, looked up by name. */
export interface ProviderRegistry {
  get(name: string): ImageProvider | undefined;
  names(): string[];
  /** The model to use: the provider's default when none is asked for, undefined when either is unknown. */
  resolveModel(providerName: string, model?: string): string | undefined;
}

export function createProviderRegistry(providers: readonly ImageProvider[]): ProviderRegistry {
  const byName = new Map<string, ImageProvider>();
  for (const provider of providers) {
    if (byName.has(provider.name)) throw new Error(`provider ${provider.name} is registered twice`);
    byName.set(provider.name, provider);
  }
  return {
    get: (name) => byName.get(name),
    names: () => [...byName.keys()],
    resolveModel(providerName, model) {
      const provider = byName.get(providerName);
      if (provider === undefined) return undefined;
      if (model === undefined) return provider.defaultModel;
      return Object.hasOwn(provider.models, model) ? model : undefined;
    },
  };
}

import type { JobKind } from '../jobs/job.js';
import type { TextBatchProvider } from './batch-provider.js';
import type { ImageProvider, TextProvider } from './provider.js';

/** The providers this process can call, by kind and name. */
export interface ProviderRegistry {
  image(name: string): ImageProvider | undefined;
  text(name: string): TextProvider | undefined;
  /** The providers that make `kind`. */
  names(kind: JobKind): string[];
  /** Models of `kind` a provider offers; empty when it offers none. */
  models(kind: JobKind, providerName: string): string[];
  /** The model to use: the provider's default when none is asked for, undefined when either is unknown. */
  resolveModel(kind: JobKind, providerName: string, model?: string): string | undefined;
  /** The provider's batch interface, where it offers batches. */
  batch(name: string): TextBatchProvider | undefined;
  /** Text models a provider is offered in batches for; empty when none. */
  batchModels(providerName: string): string[];
}

/** A provider's batch interface, and the models the deployment prices for its batches. */
export interface OfferedBatches {
  provider: TextBatchProvider;
  models: readonly string[];
}

function byName<P extends { name: string }>(providers: readonly P[]): Map<string, P> {
  const map = new Map<string, P>();
  for (const provider of providers) {
    if (map.has(provider.name)) throw new Error(`provider ${provider.name} is registered twice`);
    map.set(provider.name, provider);
  }
  return map;
}

export function createProviderRegistry(
  imageProviders: readonly ImageProvider[],
  textProviders: readonly TextProvider[] = [],
  batchProviders: readonly OfferedBatches[] = [],
): ProviderRegistry {
  const batches = new Map(batchProviders.map((offered) => [offered.provider.name, offered]));
  const images = byName(imageProviders);
  const texts = byName(textProviders);
  const modelsOf = (kind: JobKind, name: string): { models: string[]; defaultModel: string } | undefined => {
    if (kind === 'text') {
      const provider = texts.get(name);
      return provider && { models: [...provider.models], defaultModel: provider.defaultModel };
    }
    const provider = images.get(name);
    return provider && { models: Object.keys(provider.models), defaultModel: provider.defaultModel };
  };
  return {
    image: (name) => images.get(name),
    text: (name) => texts.get(name),
    names: (kind) => [...(kind === 'text' ? texts : images).keys()],
    models: (kind, name) => modelsOf(kind, name)?.models ?? [],
    batch: (name) => batches.get(name)?.provider,
    batchModels: (name) => [...(batches.get(name)?.models ?? [])],
    resolveModel(kind, providerName, model) {
      const offered = modelsOf(kind, providerName);
      if (offered === undefined) return undefined;
      if (model === undefined) return offered.defaultModel;
      return offered.models.includes(model) ? model : undefined;
    },
  };
}

import type { ImageSize, Job, JobKind, OfferedProvider } from '../../client/index.js';

/** The providers `GET /v1/providers` lists: what the form offers, and what each job costs. */
export class ProviderCatalog {
  constructor(readonly providers: readonly OfferedProvider[]) {}

  ofKind(kind: JobKind): OfferedProvider[] {
    return this.providers.filter((provider) => provider.kind === kind);
  }

  find(kind: JobKind, name: string): OfferedProvider | undefined {
    return this.providers.find((provider) => provider.kind === kind && provider.name === name);
  }

  /** The sizes a model makes; empty for text models and unknown ones. */
  sizes(kind: JobKind, provider: string, model: string): ImageSize[] {
    const prices = this.find(kind, provider)?.models.find((offered) => offered.name === model)?.prices;
    return (prices ?? []).flatMap((price) => (price.size ? [price.size] : []));
  }

  /** Credits one job costs; undefined when this deployment no longer offers it. */
  credits(kind: JobKind, provider: string, model: string, size: ImageSize | null): number | undefined {
    const prices = this.find(kind, provider)?.models.find((offered) => offered.name === model)?.prices;
    return prices?.find((price) => price.size === size)?.credits;
  }

  /** What the job costs: a succeeded one, what the provider that served it costs (a fallback's price). */
  creditsOf(job: Job): number | undefined {
    const { provider, model, size } = job.status === 'succeeded' ? job.servedBy : job;
    return this.credits(job.kind, provider, model, size);
  }
}

import type { ImageSize, Job, JobKind, OfferedProvider } from '../../client/index.js';

export type TokenPrice = NonNullable<OfferedProvider['models'][number]['tokenPrice']>;

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
    const prices = this.model(kind, provider, model)?.prices ?? [];
    return prices.flatMap((price) => (price.size ? [price.size] : []));
  }

  /** Credits one job costs; undefined when this deployment no longer offers it, or prices it by tokens. */
  credits(kind: JobKind, provider: string, model: string, size: ImageSize | null): number | undefined {
    return this.model(kind, provider, model)?.prices.find((price) => price.size === size)?.credits;
  }

  /** The token prices of a text model priced by the tokens a job uses; undefined for one priced per job. */
  tokenPrice(kind: JobKind, provider: string, model: string): TokenPrice | undefined {
    return this.model(kind, provider, model)?.tokenPrice ?? undefined;
  }

  private model(kind: JobKind, provider: string, model: string) {
    return this.find(kind, provider)?.models.find((offered) => offered.name === model);
  }

  /**
   * What the job costs by today's prices, for a job read without its ledger amounts: a succeeded one,
   * what the provider that served it costs (a fallback's price).
   */
  creditsOf(job: Job): number | undefined {
    const { provider, model, size } = job.status === 'succeeded' ? job.servedBy : job;
    return this.credits(job.kind, provider, model, size);
  }
}

import { Router } from 'express';
import type { Kysely } from 'kysely';
import type { Config, TokenPrice } from '../config/index.js';
import { costOf } from '../credits/job-cost.js';
import type { Database } from '../db/schema.js';
import { JOB_KINDS, type ImageSize, type JobKind } from '../jobs/job.js';
import { tokenPriceOf } from '../jobs/token-pricing.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import { authenticate } from './authenticate.js';

/** What one job of a model costs: per size for images, one price (size null) for text priced per job. */
export interface ModelPrice {
  size: ImageSize | null;
  credits: number;
}

/** A provider this deployment calls, for one kind of job. */
export interface OfferedProvider {
  name: string;
  kind: JobKind;
  /** A submission of this kind that names no provider goes to it. */
  isDefault: boolean;
  /** The model a submission to it that names none gets. */
  defaultModel: string;
  models: OfferedModel[];
}

export interface OfferedModel {
  name: string;
  prices: ModelPrice[];
  /**
   * A text model priced by the tokens a job uses: its prices today. A job then reserves its worst case
   * (its prompt's bytes and 16 tokens, and every token it may write) and is charged what it used.
   */
  tokenPrice: TokenPrice | null;
}

export interface ProviderList {
  data: OfferedProvider[];
}

function modelPrices(
  registry: ProviderRegistry,
  costs: Config['costs'],
  kind: JobKind,
  provider: string,
): OfferedModel[] {
  if (kind === 'text')
    return registry.models('text', provider).map((model) => {
      const tokenPrice = tokenPriceOf(costs.tokens, provider, model, new Date()) ?? null;
      const perJob = { size: null, credits: costOf(costs, { provider, model, size: null }) };
      return { name: model, prices: tokenPrice ? [] : [perJob], tokenPrice };
    });
  return Object.entries(registry.image(provider)?.models ?? {}).map(([model, sizes]) => ({
    name: model,
    prices: sizes.map((size) => ({ size, credits: costOf(costs, { provider, model, size }) })),
    tokenPrice: null,
  }));
}

/** Every configured provider of each kind, with its models, their sizes and what a job of each costs. */
export function offeredProviders(
  registry: ProviderRegistry,
  defaultProvider: string,
  costs: Config['costs'],
): ProviderList {
  const data = JOB_KINDS.flatMap((kind) =>
    registry.names(kind).map((name) => ({
      name,
      kind,
      isDefault: name === defaultProvider,
      defaultModel: registry.resolveModel(kind, name) ?? '',
      models: modelPrices(registry, costs, kind, name),
    })),
  );
  return { data };
}

/**
 * `GET /v1/providers`: what a submission may ask for here and what it costs, so a form can offer only
 * that. Read from the configuration, which does not change while the process runs: built once.
 */
export function providersRoute(
  db: Kysely<Database>,
  registry: ProviderRegistry,
  defaultProvider: string,
  costs: Config['costs'],
): Router {
  const router = Router();
  const list = offeredProviders(registry, defaultProvider, costs);
  router.use(authenticate(db));
  router.get('/', (_req, res) => {
    res.json(list);
  });
  return router;
}

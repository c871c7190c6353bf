import { z } from 'zod';
import { IMAGE_SIZES, MAX_TOKENS_LIMIT, type ImageSize, type JobKind } from '../../jobs/job.js';
import type { ProviderRegistry } from '../../providers/provider-registry.js';
import { DEFAULT_SIZE, imageRequestSchema, MAX_FALLBACKS, textRequestSchema } from '../generation-request.js';

/*
 * The submit body as this deployment takes it: the request schemas the server validates with, their
 * provider and model narrowed to what its registry offers, and the combinations it takes (which models
 * of which provider, at which sizes) as the schema's `anyOf`. The server refuses the rest from the same
 * registry, after validation (`unknown_provider`, `unknown_model`, `unsupported_size`), so a body valid
 * by the document is one the server accepts, and the reverse.
 */

/** One provider's models that make the same sizes; for text, all of its models. */
interface ModelGroup {
  provider: string;
  models: string[];
  sizes: readonly ImageSize[];
}

function imageGroups(providers: ProviderRegistry): ModelGroup[] {
  return providers.names('image').flatMap((provider) => {
    const bySizes = new Map<string, ModelGroup>();
    for (const [model, sizes] of Object.entries(providers.image(provider)?.models ?? {})) {
      const group = bySizes.get(sizes.join());
      if (group) group.models.push(model);
      else bySizes.set(sizes.join(), { provider, models: [model], sizes });
    }
    return [...bySizes.values()];
  });
}

function textGroups(providers: ProviderRegistry): ModelGroup[] {
  return providers
    .names('text')
    .map((provider) => ({ provider, models: providers.models('text', provider), sizes: [] }))
    .filter((group) => group.models.length > 0);
}

/**
 * What one group takes. Leaving the provider out means the default one, and leaving the model out that
 * provider's default model: each may be left out only in the groups it would then resolve to; and the
 * size only where the default size is one the group makes.
 */
function choice(providers: ProviderRegistry, kind: JobKind, group: ModelGroup, defaultProvider: string) {
  const provider = z.literal(group.provider);
  const model = z.enum(group.models);
  const defaultModel = providers.resolveModel(kind, group.provider);
  const fields = {
    provider: group.provider === defaultProvider ? provider.optional() : provider,
    model: defaultModel !== undefined && group.models.includes(defaultModel) ? model.optional() : model,
  };
  if (kind === 'text') return z.object({ ...fields, ...STANDARD_TIER });
  const size = z.enum(group.sizes);
  const params = group.sizes.includes(DEFAULT_SIZE)
    ? z.object({ size: size.optional() }).optional()
    : z.object({ size });
  return z.object({ ...fields, params });
}

/** A request for a call of its own: the standard tier, said or left out, and no batch miss policy. */
const STANDARD_TIER = { tier: z.literal('standard').optional(), onBatchMiss: z.never().optional() };

/**
 * What a group's batch-priced models take in the batch tier (none: no schema): `tier: "batch"`, said,
 * and the model, left out only where the provider's default is one of them.
 */
function batchChoice(providers: ProviderRegistry, group: ModelGroup, defaultProvider: string) {
  const models = providers.batchModels(group.provider);
  if (models.length === 0) return [];
  const provider = z.literal(group.provider);
  const model = z.enum(models);
  const defaultModel = providers.resolveModel('text', group.provider);
  return [
    z.object({
      provider: group.provider === defaultProvider ? provider.optional() : provider,
      model: defaultModel !== undefined && models.includes(defaultModel) ? model.optional() : model,
      tier: z.literal('batch'),
    }),
  ];
}

/**
 * What one group takes as a fallback entry: its provider, its model (left out: the default, where the
 * group has it) and, for images, a size it makes, which may be left out (the job's own size) only where
 * it makes every size a job can ask for.
 */
function fallbackChoice(providers: ProviderRegistry, kind: JobKind, group: ModelGroup) {
  const model = z.enum(group.models);
  const defaultModel = providers.resolveModel(kind, group.provider);
  const fields = {
    provider: z.literal(group.provider),
    model: defaultModel !== undefined && group.models.includes(defaultModel) ? model.optional() : model,
  };
  if (kind === 'text')
    return z.strictObject({ ...fields, maxTokens: z.int().min(1).max(MAX_TOKENS_LIMIT).optional() });
  const size = z.enum(group.sizes);
  const everySize = IMAGE_SIZES.every((each) => group.sizes.includes(each));
  return z.strictObject({ ...fields, size: everySize ? size.optional() : size });
}

/** A request's own fallback chain, each entry one the groups offered take. */
function offeredFallback(providers: ProviderRegistry, kind: JobKind, groups: ModelGroup[]) {
  const [first, ...more] = groups.map((group) => fallbackChoice(providers, kind, group));
  const entry = more.length > 0 ? z.union([first!, ...more]) : first!;
  return z.union([z.literal(false), z.array(entry).min(1).max(MAX_FALLBACKS)]).optional();
}

/** The request schema narrowed to the groups offered; a schema nothing matches when there are none. */
function offered(
  providers: ProviderRegistry,
  kind: JobKind,
  groups: ModelGroup[],
  defaultProvider: string,
): z.ZodType {
  const [first, ...more] = [
    ...groups.map((group) => choice(providers, kind, group, defaultProvider)),
    ...(kind === 'text' ? groups.flatMap((group) => batchChoice(providers, group, defaultProvider)) : []),
  ];
  if (!first) return z.never();
  const base = kind === 'image' ? imageRequestSchema : textRequestSchema;
  const narrowed = base.extend({
    provider: z.enum([...new Set(groups.map((group) => group.provider))]).optional(),
    model: z.enum(groups.flatMap((group) => group.models)).optional(),
    fallback: offeredFallback(providers, kind, groups),
  });
  // Document only: parsing leaves these checks to the registry, which answers each with its own code.
  return narrowed.meta({ anyOf: z.toJSONSchema(z.union([first, ...more]), { io: 'input' }).anyOf });
}

/** The image and the text request, as this deployment's providers make them. */
export function offeredRequestSchemas(providers: ProviderRegistry, defaultProvider: string) {
  return {
    image: offered(providers, 'image', imageGroups(providers), defaultProvider),
    text: offered(providers, 'text', textGroups(providers), defaultProvider),
  };
}

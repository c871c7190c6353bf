import { z } from 'zod';
import type { ProviderRegistry } from '../../providers/provider-registry.js';
import { providerStateListSchema, stuckJobListSchema } from '../admin-response-schemas.js';
import { deadlineSchema, webhookSchema } from '../generation-request.js';
import {
  cancelingSchema,
  deadlineExtendedSchema,
  errorSchema,
  healthSchema,
  jobPageSchema,
  jobSchema,
  meSchema,
  providerListSchema,
  streamedTextSchema,
  submittedSchema,
  textDeltaSchema,
  textResetSchema,
  webhookDeliveryListSchema,
  webhookDeliverySchema,
  webhookSecretSchema,
} from '../response-schemas.js';
import type { OpenApiOptions } from './document-options.js';
import { offeredRequestSchemas } from './offered-requests.js';
import { bare, ref, type JsonSchema } from './schema-parts.js';

/** Named schemas from one registry: what refers to another named one gets a `$ref` to it. */
function named(schemas: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  return z.toJSONSchema(registry, { uri: ref, io }).schemas;
}

/**
 * Responses are converted as zod's output, which closes every object (`additionalProperties: false`):
 * a field the server sends but the document lacks fails the live check in `test/openapi.test.ts`.
 */
function responseSchemas(adminApi: boolean): Record<string, JsonSchema> {
  const admin = { StuckJobList: stuckJobListSchema, ProviderStateList: providerStateListSchema };
  return named(
    {
      Job: jobSchema,
      JobPage: jobPageSchema,
      Submitted: submittedSchema,
      Canceling: cancelingSchema,
      DeadlineExtended: deadlineExtendedSchema,
      StreamedText: streamedTextSchema,
      TextDelta: textDeltaSchema,
      TextReset: textResetSchema,
      Me: meSchema,
      ProviderList: providerListSchema,
      Error: errorSchema,
      Health: healthSchema,
      WebhookDelivery: webhookDeliverySchema,
      WebhookDeliveryList: webhookDeliveryListSchema,
      WebhookSecret: webhookSecretSchema,
      ...(adminApi ? admin : {}),
    },
    'output',
  );
}

/**
 * The submit body, one of two kinds told apart by `kind`; each lists the providers, models and sizes
 * this deployment offers, from its provider registry.
 */
function requestSchemas(providers: ProviderRegistry, defaultProvider: string): Record<string, JsonSchema> {
  const offered = offeredRequestSchemas(providers, defaultProvider);
  const kinds = { image: 'ImageGenerationRequest', text: 'TextGenerationRequest' };
  return {
    ...named(
      {
        [kinds.image]: offered.image,
        [kinds.text]: offered.text,
        Deadline: deadlineSchema,
        Webhook: webhookSchema,
      },
      'input',
    ),
    // At least one of them: Deadline with a floor on its fields, which zod's refinement cannot say.
    DeadlineExtension: { allOf: [{ $ref: ref('Deadline') }], minProperties: 1 },
    GenerationRequest: {
      oneOf: Object.values(kinds).map((id) => ({ $ref: ref(id) })),
      discriminator: {
        propertyName: 'kind',
        mapping: Object.fromEntries(Object.entries(kinds).map(([kind, id]) => [kind, ref(id)])),
      },
    },
  };
}

/** The document's named schemas: answers as the server sends them, requests as it takes them. */
export function componentSchemas({ providers, defaultProvider, adminApi }: OpenApiOptions) {
  const all = { ...responseSchemas(adminApi), ...requestSchemas(providers, defaultProvider) };
  return Object.fromEntries(Object.entries(all).map(([id, schema]) => [id, bare(schema)]));
}

import type { RequestHandler } from 'express';
import { accountPaths } from './openapi/account-paths.js';
import { adminPaths } from './openapi/admin-paths.js';
import { componentSchemas } from './openapi/components.js';
import { DESCRIPTION, TAGS } from './openapi/description.js';
import type { OpenApiOptions } from './openapi/document-options.js';
import { eventPaths } from './openapi/event-paths.js';
import { generationPaths } from './openapi/generation-paths.js';
import { servicePaths } from './openapi/service-paths.js';
import { webhookPaths } from './openapi/webhook-paths.js';

export { OPENAPI_PATH } from './openapi/service-paths.js';
export type { OpenApiOptions } from './openapi/document-options.js';

/**
 * The API as OpenAPI 3.1, from the zod schemas that validate requests and describe responses: what this
 * deployment serves and accepts, so a client (or Schemathesis, `npm run test:contract`) can trust it.
 */
export function openApiDocument(options: OpenApiOptions) {
  const { adminApi, metricsToken } = options;
  return {
    openapi: '3.1.0',
    info: { title: 'Kiln', version: 'v1', description: DESCRIPTION },
    // Relative: the deployment that serves this document serves the API, wherever it is reached from.
    servers: [{ url: '/', description: 'The origin this document was fetched from' }],
    tags: TAGS.filter((tag) => adminApi || tag.name !== 'admin'),
    security: [{ apiKey: [] }],
    paths: {
      ...generationPaths(),
      ...eventPaths(),
      ...webhookPaths(),
      ...accountPaths(),
      ...(adminApi ? adminPaths() : {}),
      ...servicePaths({ metricsToken }),
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer kiln_…`' },
        ...(adminApi
          ? { adminKey: { type: 'http', scheme: 'bearer', description: 'The operator key, ADMIN_API_KEY' } }
          : {}),
        ...(metricsToken
          ? {
              metricsToken: {
                type: 'http',
                scheme: 'bearer',
                description: 'The scrape token, METRICS_TOKEN',
              },
            }
          : {}),
      },
      schemas: componentSchemas(options),
    },
  };
}

/** Public: a client needs the document before it has a key. Built once, when the app is. */
export function openApiRoute(options: OpenApiOptions): RequestHandler {
  const document = openApiDocument(options);
  return (_req, res) => {
    res.json(document);
  };
}

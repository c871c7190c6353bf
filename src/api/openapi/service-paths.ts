import type { Tag } from './description.js';
import { errors, json } from './schema-parts.js';

export const OPENAPI_PATH = '/openapi.json';

const tags: Tag[] = ['service'];
/** Public: a load balancer, a scraper or a client that has no key yet. */
const open = { tags, security: [] };

/** Public too, unless METRICS_TOKEN is set: then a scraper's, with that token. */
const metricsSecurity = (metricsToken: boolean) =>
  metricsToken ? { tags, security: [{ metricsToken: [] }] } : open;

export function servicePaths({ metricsToken }: { metricsToken: boolean }) {
  const refused = metricsToken ? errors({ unauthorized: ': no metrics token, or a wrong one' }) : {};
  return {
    '/healthz': {
      get: {
        operationId: 'getHealth',
        summary: 'Whether this API process serves',
        ...open,
        responses: { 200: json('Serving', 'Health') },
      },
    },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        summary: "This process's Prometheus metrics",
        ...metricsSecurity(metricsToken),
        responses: {
          200: { description: 'Prometheus text format', content: { 'text/plain': {} } },
          ...refused,
        },
      },
    },
    [OPENAPI_PATH]: {
      get: {
        operationId: 'getOpenApi',
        summary: "This document, for this deployment's providers, models and operator API",
        ...open,
        responses: {
          200: {
            description: 'This document',
            content: { 'application/json': { schema: { type: 'object' } } },
          },
        },
      },
    },
  };
}

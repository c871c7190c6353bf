import type { Tag } from './description.js';
import { errors, jobId, json, unauthorized } from './schema-parts.js';

const tags: Tag[] = ['webhooks'];

/** A job's webhook deliveries and their redelivery. */
export function webhookPaths() {
  const deliveryId = { name: 'deliveryId', in: 'path', required: true, schema: { type: 'string' } };
  return {
    '/v1/generations/{id}/webhooks': {
      get: {
        operationId: 'listGenerationWebhooks',
        summary: "The job's webhook deliveries, in seq order, each with every attempt",
        tags,
        parameters: [jobId],
        responses: {
          200: json('The deliveries', 'WebhookDeliveryList'),
          ...unauthorized,
          ...errors({ not_found: '' }),
        },
      },
    },
    '/v1/generations/{id}/webhooks/{deliveryId}/redeliver': {
      post: {
        operationId: 'redeliverGenerationWebhook',
        summary: 'Send a delivery that has ended (failed or succeeded) again, in a new run',
        tags,
        parameters: [jobId, deliveryId],
        responses: {
          202: json('The delivery, pending again', 'WebhookDelivery'),
          ...unauthorized,
          ...errors({
            not_found: ': no such job or delivery',
            delivery_pending: ': it is still being attempted',
          }),
        },
      },
    },
  };
}

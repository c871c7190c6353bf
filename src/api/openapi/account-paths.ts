import { z } from 'zod';
import { rotateBodySchema, WEBHOOK_SECRET_PATH } from '../webhook-secret-routes.js';
import type { Tag } from './description.js';
import { bare, errors, json, unauthorized } from './schema-parts.js';

const tags: Tag[] = ['account'];

/** The caller's own: plan and credits, webhook signing secret. */
export function accountPaths() {
  const rotateBody = bare(z.toJSONSchema(rotateBodySchema, { io: 'input' }));
  return {
    '/v1/me': {
      get: {
        operationId: 'getMe',
        summary: "The caller's plan, credits and unfinished jobs",
        tags,
        responses: { 200: json('The caller', 'Me'), ...unauthorized },
      },
    },
    '/v1/providers': {
      get: {
        operationId: 'listProviders',
        summary: 'The providers this deployment calls, with their models, sizes and credit prices',
        description:
          'One entry per provider and kind: only configured providers are listed, so a form that offers ' +
          'these offers nothing the server refuses as `unknown_provider` or `unknown_model`.',
        tags: ['generations'] satisfies Tag[],
        responses: { 200: json('The providers', 'ProviderList'), ...unauthorized },
      },
    },
    [WEBHOOK_SECRET_PATH]: {
      get: {
        operationId: 'getWebhookSecret',
        summary: "The caller's webhook signing secret, made on the first read",
        tags,
        responses: { 200: json('The secret', 'WebhookSecret'), ...unauthorized },
      },
    },
    [`${WEBHOOK_SECRET_PATH}/rotate`]: {
      post: {
        operationId: 'rotateWebhookSecret',
        summary: 'Replace the secret; the replaced one signs beside the new one for `overlapSeconds`',
        description:
          "Meanwhile each delivery carries two `v1,` signatures, the new secret's first. Rotating again " +
          'during an overlap replaces the previous secret with the then-current one: only one is kept.',
        tags,
        requestBody: { required: false, content: { 'application/json': { schema: rotateBody } } },
        responses: {
          200: json('The new secret, and when the replaced one stops signing', 'WebhookSecret'),
          ...unauthorized,
          ...errors({
            invalid_request: '',
            malformed_json: '',
            body_too_large: '',
            unsupported_media_type: ': a body that is not JSON',
          }),
        },
      },
    },
  };
}

import type { RequestHandler } from 'express';
import { z } from 'zod';
import { ApiErrorStatus, type ApiErrorCode } from './api-error-codes.js';
import { generationBodySchema, idempotencyKeySchema } from './generation-request.js';
import { STREAM_PATH } from './job-stream.js';
import { listQuerySchema } from './list-query.js';
import { providerStateListSchema, stuckJobListSchema } from './admin-response-schemas.js';
import { ADMIN_PATH, stuckQuerySchema } from './admin-routes.js';
import { rotateBodySchema, WEBHOOK_SECRET_PATH } from './webhook-secret-routes.js';
import {
  cancelingSchema,
  errorSchema,
  healthSchema,
  jobPageSchema,
  jobSchema,
  meSchema,
  streamedTextSchema,
  submittedSchema,
  webhookDeliveryListSchema,
  webhookDeliverySchema,
  webhookSecretSchema,
} from './response-schemas.js';

export const OPENAPI_PATH = '/openapi.json';

type JsonSchema = z.core.JSONSchema.BaseSchema;

const DESCRIPTION = `Kiln runs AI image and text generations as durable jobs: submit one, get \`202\` and a job id at \
once, then read the job, or its content once it has succeeded. Errors come as \
\`{ "error": { "code", "message", "details"? } }\`; a method a path does not take is answered \`405\` \
\`method_not_allowed\` with an \`Allow\` header listing those it does.

Each change of a job is an event numbered \`seq\` 1, 2, 3… per job (the job's \`version\` after it). Events \
stream as Server-Sent Events from \`/v1/generations/{id}/events\`, and over a WebSocket at \`${STREAM_PATH}\`, \
which OpenAPI cannot describe: connect with the same \`Authorization\` header, send \
\`{ "type": "subscribe", "id", "since"? }\` and receive \`{ "type": "job", "seq", "event", "job" }\` (\`event\` is \
\`status\` or \`progress\`, \`job\` a \`Job\`) for every event after \`since\` until the job ends, then \
\`{ "type": "subscription_ended", "id", "status" }\` (at once for a job that has ended with nothing after \
\`since\`), after which nothing more comes for that id; a client too slow to read is closed with code 4008 and \
resumes with \`since\`, and a socket whose API key is revoked is closed with code 4001. A text job's tokens come between its events as \
\`{ "type": "text", "id", "attempt", "offset", "delta" }\` (\`delta\` goes at \`offset\`, in UTF-16 units, of \
that attempt's text; the first one after subscribing is the text so far, at offset 0) and \
\`{ "type": "reset", "id", "attempt" }\` when a retried attempt starts the text again. \`{ "type": "unsubscribe", "id" }\` stops that, \
\`{ "type": "cancel", "id" }\` cancels the job (answered \`{ "type": "canceling", "id" }\`), and errors come as \
\`{ "type": "error", "error": { "code", "message" }, "id"? }\`.

A job submitted with \`webhook: { url, events? }\` has each event it asks for (default: the terminal statuses) \
POSTed to \`url\` as \`{ type, timestamp, seq, data }\` (\`data\` a \`Job\`), signed the Standard Webhooks way: \
\`webhook-id\` (the delivery id, the same on every attempt), \`webhook-timestamp\` (unix seconds) and \
\`webhook-signature\` (\`v1,\` and the base64 HMAC-SHA256 of \`{id}.{timestamp}.{body}\` under the user's \
\`whsec_…\` secret, \`${WEBHOOK_SECRET_PATH}\`; while a rotation overlaps, a second \`v1,\` entry under the \
replaced one: accept when any entry matches). Any 2xx is success; anything else, a redirect included, is \
retried with backoff for at least 24 h, after which the delivery is \`failed\`: \
\`/v1/generations/{id}/webhooks\` lists deliveries and attempts.`;

const ref = (id: string) => `#/components/schemas/${id}`;

/** OpenAPI 3.1 schemas default to draft 2020-12, and a `$id` with a fragment is not valid there. */
function bare({ $schema: _dialect, $id: _id, ...schema }: JsonSchema): JsonSchema {
  return schema;
}

/**
 * Responses are converted as zod's output, which closes every object (`additionalProperties: false`):
 * a field the server sends but the document lacks fails the live check in `test/openapi.test.ts`.
 */
function componentSchemas(): Record<string, JsonSchema> {
  const responses = z.registry<{ id: string }>();
  const named = {
    Job: jobSchema,
    JobPage: jobPageSchema,
    Submitted: submittedSchema,
    Canceling: cancelingSchema,
    StreamedText: streamedTextSchema,
    Me: meSchema,
    Error: errorSchema,
    Health: healthSchema,
    WebhookDelivery: webhookDeliverySchema,
    WebhookDeliveryList: webhookDeliveryListSchema,
    WebhookSecret: webhookSecretSchema,
    StuckJobList: stuckJobListSchema,
    ProviderStateList: providerStateListSchema,
  };
  for (const [id, schema] of Object.entries(named)) responses.add(schema, { id });
  const { schemas } = z.toJSONSchema(responses, { uri: ref });
  const all = { ...schemas, GenerationRequest: z.toJSONSchema(generationBodySchema, { io: 'input' }) };
  return Object.fromEntries(Object.entries(all).map(([id, schema]) => [id, bare(schema)]));
}

function queryParameters(schema: z.ZodObject) {
  const { properties = {}, required = [] } = z.toJSONSchema(schema, { io: 'input' });
  return Object.entries(properties).map(([name, property]) => ({
    name,
    in: 'query',
    required: required.includes(name),
    schema: property,
  }));
}

const header = (description: string) => ({ description, schema: { type: 'string' } });

function json(description: string, schemaId: string, headers?: Record<string, unknown>) {
  const content = { 'application/json': { schema: { $ref: ref(schemaId) } } };
  return headers ? { description, content, headers } : { description, content };
}

/** The headers an error answer of this status comes with. */
function errorHeaders(status: number): Record<string, unknown> | undefined {
  if (status === 401) return { 'WWW-Authenticate': header('`Bearer`') };
  if (status === 429) return { 'Retry-After': header('Seconds to wait') };
  return undefined;
}

/**
 * An operation's error answers, from the codes it may send (each with what its description adds after
 * it): grouped under the status `ApiErrorStatus` gives each code, so the document cannot list a code
 * the API does not have, or under another status.
 */
function errors(codes: Partial<Record<ApiErrorCode, string>>) {
  const byStatus = new Map<number, string[]>();
  for (const [code, note] of Object.entries(codes)) {
    const status = ApiErrorStatus[code as ApiErrorCode];
    byStatus.set(status, [...(byStatus.get(status) ?? []), `\`${code}\`${note}`]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, described]) => [
      status,
      json(described.join(', '), 'Error', errorHeaders(status)),
    ]),
  );
}

const unauthorized = errors({ unauthorized: ': no valid API key' });

const jobId = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

function submitOperation() {
  return {
    operationId: 'submitGeneration',
    summary: 'Submit a generation; retries with the same Idempotency-Key land on the same job',
    parameters: [
      {
        name: 'Idempotency-Key',
        in: 'header',
        required: true,
        schema: bare(z.toJSONSchema(idempotencyKeySchema)),
      },
    ],
    requestBody: {
      required: true,
      content: { 'application/json': { schema: { $ref: ref('GenerationRequest') } } },
    },
    responses: {
      202: json('Accepted, or the existing job of this key', 'Submitted', {
        Location: header('The job'),
        'Idempotent-Replayed': header('`true` when this key already had a job'),
      }),
      ...unauthorized,
      ...errors({
        invalid_request: '',
        malformed_json: '',
        missing_idempotency_key: '',
        invalid_idempotency_key: '',
        unknown_provider: '',
        unknown_model: '',
        unsupported_size: '',
        bad_request: '',
        insufficient_credits: ' (details `{ cost, balance }`); no job is created',
        body_too_large: '',
        unsupported_media_type: '',
        idempotency_key_reused: ' with a different body',
        rate_limited: ': too many submissions for this API key',
      }),
    },
  };
}

function listOperation() {
  return {
    operationId: 'listGenerations',
    summary: "The caller's jobs, newest first, keyset-paginated",
    parameters: queryParameters(listQuerySchema),
    responses: {
      200: json('One page', 'JobPage'),
      ...unauthorized,
      ...errors({ invalid_request: '', invalid_cursor: '' }),
    },
  };
}

function jobPaths() {
  return {
    '/v1/generations/{id}': {
      get: {
        operationId: 'getGeneration',
        parameters: [jobId],
        responses: { 200: json('The job', 'Job'), ...unauthorized, ...errors({ not_found: '' }) },
      },
    },
    '/v1/generations/{id}/events': {
      get: {
        operationId: 'streamGenerationEvents',
        summary: "The job's events as Server-Sent Events",
        description:
          'Each event: `id:` its seq, `event:` `status` or `progress`, `data:` the Job after the change. ' +
          'Starts after `Last-Event-ID` (or `since`); ends after the terminal event, or when the API key ' +
          'is revoked (a reconnect is then answered 401). A text job also gets ' +
          '`event: text` (`data: { attempt, offset, delta }`) and `event: reset` (`data: { attempt }`) ' +
          'without an id, the same messages the WebSocket sends.',
        parameters: [
          jobId,
          { name: 'Last-Event-ID', in: 'header', schema: { type: 'string', pattern: '^[0-9]{1,9}$' } },
          { name: 'since', in: 'query', schema: { type: 'integer', minimum: 0 } },
        ],
        responses: {
          200: {
            description: 'The events',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          204: { description: 'The job has ended and has no event after Last-Event-ID: stop reconnecting' },
          ...unauthorized,
          ...errors({ invalid_request: ': a bad Last-Event-ID or since', not_found: '' }),
        },
      },
    },
    '/v1/generations/{id}/content': {
      get: {
        operationId: 'getGenerationContent',
        parameters: [jobId],
        responses: {
          200: {
            description: 'The result',
            content: { 'image/png': {}, 'text/plain': { schema: { type: 'string' } } },
            headers: { ETag: header('Its SHA-256') },
          },
          ...unauthorized,
          ...errors({
            not_found: '',
            result_not_ready: ': the job has not succeeded',
            result_expired: ': removed after its retention period',
          }),
        },
      },
    },
    '/v1/generations/{id}/text': {
      get: {
        operationId: 'getGenerationText',
        summary: "A text job's output so far: the polling fallback for its streamed tokens",
        parameters: [jobId],
        responses: {
          200: json('The text so far', 'StreamedText'),
          ...unauthorized,
          ...errors({
            not_found: '',
            not_a_text_job: '',
            result_expired: ': removed after its retention period',
          }),
        },
      },
    },
    '/v1/generations/{id}/cancel': {
      post: {
        operationId: 'cancelGeneration',
        summary: 'Cancel a job; it then ends `canceled`',
        parameters: [jobId],
        responses: {
          202: json('Canceling', 'Canceling'),
          ...unauthorized,
          ...errors({ not_found: '', job_finished: ': the job has already ended' }),
        },
      },
    },
  };
}

function webhookPaths() {
  const deliveryId = { name: 'deliveryId', in: 'path', required: true, schema: { type: 'string' } };
  return {
    '/v1/generations/{id}/webhooks': {
      get: {
        operationId: 'listGenerationWebhooks',
        summary: "The job's webhook deliveries, in seq order, each with every attempt",
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

function webhookSecretPaths() {
  const rotateBody = bare(z.toJSONSchema(rotateBodySchema, { io: 'input' }));
  return {
    [WEBHOOK_SECRET_PATH]: {
      get: {
        operationId: 'getWebhookSecret',
        summary: "The caller's webhook signing secret, made on the first read",
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

/** The operator API: served only when ADMIN_API_KEY is set (otherwise these paths answer 404). */
function adminPaths() {
  const admin = {
    tags: ['admin'],
    security: [{ adminKey: [] }],
  };
  const refused = errors({
    unauthorized: ': no admin key, or a wrong one',
    forbidden: ': a user API key, not the admin key',
  });
  return {
    [`${ADMIN_PATH}/jobs/stuck`]: {
      get: {
        operationId: 'adminListStuckJobs',
        summary: 'Unfinished jobs of every user that have not changed for a while, longest idle first',
        ...admin,
        parameters: queryParameters(stuckQuerySchema),
        responses: {
          200: json('The jobs, at most `limit`', 'StuckJobList'),
          ...refused,
          ...errors({ invalid_request: '' }),
        },
      },
    },
    [`${ADMIN_PATH}/jobs/{id}/retry`]: {
      post: {
        operationId: 'adminRetryJob',
        summary: 'Re-run a failed job under its own id, its history kept and its cost reserved again',
        description:
          'The job goes back to `queued` (a new event: `seq` keeps counting) and a new run of its workflow ' +
          'starts with the input it was submitted with; its deadlines count from the retry.',
        ...admin,
        parameters: [jobId],
        responses: {
          202: json('The job, queued again', 'Job'),
          ...refused,
          ...errors({
            insufficient_credits: ' (details `{ cost, balance }`): the user cannot pay for another run',
            not_found: '',
            job_not_failed: ' (details `{ status }`)',
            run_closing: ': the failed run has not closed yet',
            provider_not_configured: ' (details `{ provider, model }`): not offered here any more',
            history_unavailable: ': Temporal no longer keeps the run',
          }),
        },
      },
    },
    [`${ADMIN_PATH}/jobs/{id}/cancel`]: {
      post: {
        operationId: 'adminCancelJob',
        summary: "Cancel any user's job; it then ends `canceled`",
        ...admin,
        parameters: [jobId],
        responses: {
          202: json('The job, canceling', 'Job'),
          ...refused,
          ...errors({ not_found: '', job_finished: ': the job has already ended' }),
        },
      },
    },
    [`${ADMIN_PATH}/providers`]: {
      get: {
        operationId: 'adminListProviders',
        summary: "Each provider's breaker, and its rate and call slots against their limits",
        ...admin,
        responses: { 200: json('The providers', 'ProviderStateList'), ...refused },
      },
    },
  };
}

function otherPaths() {
  const open = { security: [] };
  return {
    '/v1/me': {
      get: {
        operationId: 'getMe',
        summary: "The caller's plan, credits and unfinished jobs",
        responses: { 200: json('The caller', 'Me'), ...unauthorized },
      },
    },
    '/healthz': { get: { operationId: 'getHealth', ...open, responses: { 200: json('Serving', 'Health') } } },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        ...open,
        responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': {} } } },
      },
    },
    [OPENAPI_PATH]: {
      get: {
        operationId: 'getOpenApi',
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

/** The API as OpenAPI 3.1, from the zod schemas that validate requests and describe responses. */
export const openApiDocument = {
  openapi: '3.1.0',
  info: { title: 'Kiln', version: 'v1', description: DESCRIPTION },
  security: [{ apiKey: [] }],
  paths: {
    '/v1/generations': { post: submitOperation(), get: listOperation() },
    ...jobPaths(),
    ...webhookPaths(),
    ...webhookSecretPaths(),
    ...adminPaths(),
    ...otherPaths(),
  },
  components: {
    securitySchemes: {
      apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer kiln_…`' },
      adminKey: { type: 'http', scheme: 'bearer', description: 'The operator key, ADMIN_API_KEY' },
    },
    schemas: componentSchemas(),
  },
};

/** Public: a client needs the document before it has a key. */
export const openApiRoute: RequestHandler = (_req, res) => {
  res.json(openApiDocument);
};

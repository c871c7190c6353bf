import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { openApiDocument } from '../src/api/openapi.js';
import { offeredProviders } from '../src/api/providers-route.js';
import { loadConfig } from '../src/config/index.js';
import { markPurged } from '../src/db/retention-repository.js';
import type { WebhookDelivery } from '../src/db/webhook-repository.js';
import { ensureWebhookSecret } from '../src/db/webhook-secret-repository.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { startWebhookReceiver, type FakeWebhookReceiver } from './fakes/webhook-receiver.js';
import { apiFetch, openStream, pollUntilDone, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

interface Operation {
  summary?: string;
  tags?: string[];
  security?: unknown[];
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
/** A type, not an interface: the validator takes it as a plain record. */
type OpenApiDocument = {
  servers: { url: string }[];
  tags: { name: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, SchemaObject>; securitySchemes: Record<string, unknown> };
};
/** As much of a JSON Schema as the tests below read. */
interface SchemaObject {
  properties?: Record<string, SchemaObject>;
  required?: string[];
  enum?: string[];
  const?: unknown;
  not?: unknown;
  pattern?: string;
  anyOf?: SchemaObject[];
  oneOf?: SchemaObject[];
  discriminator?: unknown;
  contentSchema?: { $ref: string };
}
/** One Server-Sent Event as a parser reads it: `id` is the last one sent, as EventSource keeps it. */
interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/** What `check` gets from a request: the operation as `METHOD /template`, and the live answer. */
interface Answer {
  operation: string;
  response: Response;
}

const DOCUMENT_ID = 'kiln-openapi';
const SUBMIT = 'POST /v1/generations';
const LIST = 'GET /v1/generations';
const GET = 'GET /v1/generations/{id}';
const CONTENT = 'GET /v1/generations/{id}/content';
const TEXT = 'GET /v1/generations/{id}/text';
const CANCEL = 'POST /v1/generations/{id}/cancel';
const DEADLINE = 'POST /v1/generations/{id}/deadline';
const ME = 'GET /v1/me';
const OFFERED = 'GET /v1/providers';
const EVENTS = 'GET /v1/generations/{id}/events';
const WEBHOOKS = 'GET /v1/generations/{id}/webhooks';
const REDELIVER = 'POST /v1/generations/{id}/webhooks/{deliveryId}/redeliver';
const WEBHOOK_SECRET = 'GET /v1/webhook-secret';
const ROTATE_SECRET = 'POST /v1/webhook-secret/rotate';
const STUCK = 'GET /v1/admin/jobs/stuck';
const RETRY = 'POST /v1/admin/jobs/{id}/retry';
const ADMIN_CANCEL = 'POST /v1/admin/jobs/{id}/cancel';
const PROVIDERS = 'GET /v1/admin/providers';
const ADMIN = [STUCK, RETRY, ADMIN_CANCEL, PROVIDERS];
const ADMIN_KEY = randomBytes(32).toString('hex');
/** Few enough to reach in one test; this file holds one stream at a time otherwise. */
const STREAMS_PER_KEY = 3;

let ctx: TestContext;
let api: ApiTarget;
let document: OpenApiDocument;
const ajv = new Ajv2020({ strict: true, allErrors: true });
// ajv-formats is CommonJS: imported from ESM, its `default` export is the whole module.
addFormats.default(ajv);
let receiver: FakeWebhookReceiver;
let driven = 0;
const validated: string[] = [];

before(async () => {
  receiver = await startWebhookReceiver();
  ctx = await createTestContext({
    // The webhook receiver is on 127.0.0.1; a redelivery to it, once it is down, gives up soon.
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_RETRY_WINDOW_SECONDS: '2',
    // Slow enough that a job is still unfinished when it is canceled right after its submission.
    LOCAL_PROVIDER_DELAY_MS: '2000',
    // A burst small enough to reach 429 in a few requests, large enough for this file's other submissions.
    SUBMIT_RATE_PER_MINUTE: '6',
    SUBMIT_BURST: '10',
    MAX_STREAMS_PER_KEY: String(STREAMS_PER_KEY),
    ADMIN_API_KEY: ADMIN_KEY,
  });
  receiver.setSecret((await ensureWebhookSecret(ctx.database.db, ctx.userId)).secret);
  await startWorker(ctx);
  api = await startApi(ctx);
  document = (await (await fetch(`${api.url}/openapi.json`)).json()) as OpenApiDocument;
  // The document is added whole so that `#/components/…` refs resolve; its top-level fields are not
  // JSON Schema keywords, and strict mode would refuse them.
  ajv.addVocabulary(Object.keys(document));
  // OpenAPI's own keyword; to JSON Schema, an annotation.
  ajv.addKeyword('discriminator');
  ajv.addSchema(document, DOCUMENT_ID);
});
after(async () => {
  await ctx.cleanup();
  await receiver.close();
});

function operationOf(operation: string): Operation {
  const [method, template] = operation.split(' ') as [string, string];
  const found = document.paths[template]?.[method.toLowerCase()];
  assert.ok(found, `${operation} is not documented`);
  return found;
}

/** The JSON Schema validator of one documented response, from the document itself. */
function responseValidator(operation: string, status: number, mediaType = 'application/json') {
  const [method, template] = operation.split(' ') as [string, string];
  const path = ['paths', template, method.toLowerCase(), 'responses', String(status)];
  const pointer = [...path, 'content', mediaType, 'schema']
    .map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1'))
    .join('/');
  const validate = ajv.getSchema(`${DOCUMENT_ID}#/${pointer}`);
  assert.ok(validate, `${operation} ${status}: no JSON schema`);
  return validate;
}

/** Sends a request for a documented operation, `{id}` filled in; authenticated unless `apiKey` is null. */
function call(
  operation: string,
  options: {
    id?: string;
    deliveryId?: string;
    query?: string;
    init?: RequestInit;
    apiKey?: string | null;
  } = {},
): Promise<Answer> {
  const [method, template] = operation.split(' ') as [string, string];
  const filled = template.replace('{id}', options.id ?? 'job_none');
  const path = `${filled.replace('{deliveryId}', options.deliveryId ?? 'whd_none')}${options.query ?? ''}`;
  const request = apiFetch(api, path, { ...options.init, method }, options.apiKey);
  return request.then((response) => ({ operation, response }));
}

function submission(body: unknown, key = randomUUID(), apiKey?: string): Promise<Answer> {
  const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': key };
  return call(SUBMIT, { init: { body: JSON.stringify(body), headers }, apiKey });
}

function matchesSchema(operation: string, status: number, bytes: Buffer): unknown {
  const body: unknown = JSON.parse(bytes.toString());
  const validate = responseValidator(operation, status);
  assert.ok(
    validate(body),
    `${operation} ${status}: ${ajv.errorsText(validate.errors)} in ${bytes.toString()}`,
  );
  // The catch-all route answers unknown paths with 404 `not_found` too; only its message tells them apart.
  assert.doesNotMatch(bytes.toString(), /no route for/, `${operation} is not served`);
  return body;
}

/** Events as EventSource reads them: fields until a blank line; comments and `retry:` alone are none. */
function serverSentEvents(text: string): ServerSentEvent[] {
  const events: ServerSentEvent[] = [];
  let id: string | undefined;
  for (const block of text.split('\n\n')) {
    const fields = block.split('\n').map((line) => /^([^:]*): ?(.*)$/.exec(line) ?? []);
    const value = (name: string) => fields.find(([, field]) => field === name)?.[2];
    id = value('id') ?? id;
    const data = value('data');
    if (data !== undefined) events.push({ event: value('event') ?? 'message', data, ...(id ? { id } : {}) });
  }
  return events;
}

/** Each event against the documented event schema, and its `data` against the schema that one names. */
function matchesEvents(operation: string, status: number, bytes: Buffer): ServerSentEvent[] {
  const validate = responseValidator(operation, status, 'text/event-stream');
  const events = serverSentEvents(bytes.toString());
  const { schema } = operationOf(operation).responses[String(status)]?.content?.['text/event-stream'] ?? {};
  for (const event of events) {
    assert.ok(
      validate(event),
      `${operation}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(event)}`,
    );
    const named = (schema as SchemaObject).oneOf?.find((one) =>
      one.properties?.event?.enum?.includes(event.event),
    );
    const dataSchema = named?.properties?.data?.contentSchema?.$ref ?? '';
    const validateData = ajv.getSchema(`${DOCUMENT_ID}${dataSchema}`);
    assert.ok(validateData?.(JSON.parse(event.data)), `${operation}: ${event.event} data ${event.data}`);
  }
  return events;
}

/**
 * Asserts the answer has the expected status, that the document lists that status and the answer's media
 * type for the operation, and that a JSON body, or each event of a stream, matches the documented schema.
 * Returns the JSON body, or the events.
 */
async function check({ operation, response }: Answer, status: number): Promise<unknown> {
  driven += 1;
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.equal(response.status, status, `${operation}: ${bytes.toString()}`);
  const documented = operationOf(operation).responses[String(status)];
  assert.ok(documented, `${operation} answered ${status}, which the document does not list`);
  if (status === 204) {
    assert.equal(bytes.length, 0, `${operation} 204 has a body`);
    assert.equal(documented.content, undefined, `${operation} 204 documents content`);
    validated.push(`${operation} ${status}`);
    return undefined;
  }
  const mediaType = response.headers.get('content-type')?.split(';')[0] ?? '';
  assert.ok(documented.content?.[mediaType], `${operation} ${status}: ${mediaType} is not documented`);
  const isJson = mediaType === 'application/json';
  if (!isJson) assert.ok(bytes.length > 0, `${operation} ${status}: empty body`);
  const events = mediaType === 'text/event-stream' ? matchesEvents(operation, status, bytes) : undefined;
  const body = isJson ? matchesSchema(operation, status, bytes) : events;
  validated.push(`${operation} ${status}`);
  return body;
}

function documentedPairs(): string[] {
  return Object.entries(document.paths).flatMap(([template, operations]) =>
    Object.entries(operations).flatMap(([method, operation]) =>
      Object.keys(operation.responses).map((status) => `${method.toUpperCase()} ${template} ${status}`),
    ),
  );
}

test('the served document is valid OpenAPI 3.1, and the validator refuses a broken one', async () => {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(document));
  assert.deepEqual(result, { valid: true });
  assert.equal(validator.version, '3.1');
  const broken = structuredClone(document) as unknown as { paths: Record<string, unknown> };
  broken.paths['/v1/me'] = { get: { responses: 'none' } };
  assert.equal((await new Validator().validate(broken)).valid, false);
});

test('documents no path the API does not serve, and such a path is told apart live', async () => {
  assert.equal(document.paths['/v1/nope'], undefined);
  const response = await apiFetch(api, '/v1/nope');
  assert.equal(response.status, 404);
  assert.match(JSON.stringify(await response.json()), /no route for GET \/v1\/nope/);
});

test('public operations answer without a key; every other one answers 401 without one', async () => {
  await check(await call('GET /healthz', { apiKey: null }), 200);
  await check(await call('GET /metrics', { apiKey: null }), 200);
  await check(await call('GET /openapi.json', { apiKey: null }), 200);
  const operations = [
    ...[SUBMIT, LIST, GET, CONTENT, TEXT, EVENTS, CANCEL, DEADLINE, ME, OFFERED, WEBHOOKS, REDELIVER],
    ...[WEBHOOK_SECRET, ROTATE_SECRET, ...ADMIN],
  ];
  for (const operation of operations) {
    assert.notDeepEqual(operationOf(operation).security, [], `${operation} is documented as public`);
    await check(await call(operation, { apiKey: null }), 401);
  }
});

test('a job submitted, finished, listed, read, downloaded, canceled too late and tombstoned', async () => {
  const key = randomUUID();
  const accepted = (await check(
    await submission({ kind: 'image', prompt: 'openapi', params: { size: '256x256' } }, key),
    202,
  )) as { id: string };
  assert.equal((await pollUntilDone(api, accepted.id)).status, 'succeeded');
  await check(await call(GET, { id: accepted.id }), 200);
  await check(await call(LIST, { query: '?limit=2&status=succeeded' }), 200);
  await check(await call(CONTENT, { id: accepted.id }), 200);
  await check(await call(EVENTS, { id: accepted.id }), 200);
  await check(await call(EVENTS, { id: accepted.id, init: { headers: { 'Last-Event-ID': '1000' } } }), 204);
  await check(await call(EVENTS, { id: accepted.id, query: '?since=soon' }), 400);
  await check(await call(CANCEL, { id: accepted.id }), 409);
  await check(await submission({ kind: 'image', prompt: 'openapi, edited' }, key), 422);
  await markPurged(ctx.database.db, [accepted.id]);
  await check(await call(CONTENT, { id: accepted.id }), 410);
  await check(await call(GET, { id: accepted.id }), 200);
});

test("a text job's text so far, its text content, and an image job's refusal of the text route", async () => {
  // A key of its own: this file's main key is near its submission burst.
  const { apiKey } = await ctx.createUser();
  const as = { url: api.url, apiKey };
  const body = { kind: 'text', prompt: 'openapi, text', provider: 'local' };
  const accepted = (await check(await submission(body, randomUUID(), apiKey), 202)) as { id: string };
  await check(await call(TEXT, { id: accepted.id, apiKey }), 200);
  // Opened while the job runs, the stream has its text too; it ends with the job.
  const events = (await check(await call(EVENTS, { id: accepted.id, apiKey }), 200)) as ServerSentEvent[];
  assert.ok(
    events.some(({ event }) => event === 'text'),
    JSON.stringify(events),
  );
  assert.equal((await pollUntilDone(as, accepted.id)).status, 'succeeded');
  await check(await call(CONTENT, { id: accepted.id, apiKey }), 200);
  const image = (await check(
    await submission({ kind: 'image', prompt: 'openapi, no text' }, randomUUID(), apiKey),
    202,
  )) as {
    id: string;
  };
  await check(await call(TEXT, { id: image.id, apiKey }), 409);
  await markPurged(ctx.database.db, [accepted.id]);
  await check(await call(TEXT, { id: accepted.id, apiKey }), 410);
});

test('a submission with Prefer: wait is answered with the job once it has ended', async () => {
  // A key of its own: this file's main key is near its submission burst.
  const { apiKey } = await ctx.createUser();
  const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': randomUUID(), Prefer: 'wait=30' };
  const body = JSON.stringify({ kind: 'image', prompt: 'openapi, waited for', params: { size: '256x256' } });
  const answer = await call(SUBMIT, { apiKey, init: { body, headers } });
  assert.equal(answer.response.headers.get('Preference-Applied'), 'wait=30');
  assert.equal(((await check(answer, 200)) as { status: string }).status, 'succeeded');
});

test('a deadline moved later, refused earlier, and asked of an ended job', async () => {
  // A key of its own: this file's main key is near its submission burst.
  const { apiKey } = await ctx.createUser();
  const body = { kind: 'image', prompt: 'openapi, deadline', deadline: { finishWithinSeconds: 60 } };
  const accepted = (await check(await submission(body, randomUUID(), apiKey), 202)) as { id: string };
  const extend = (payload: string, contentType = 'application/json') =>
    call(DEADLINE, {
      id: accepted.id,
      apiKey,
      init: { body: payload, headers: { 'Content-Type': contentType } },
    });
  await check(await extend(JSON.stringify({ finishWithinSeconds: 90 })), 200);
  await check(await extend(JSON.stringify({ finishWithinSeconds: 30 })), 409);
  await check(await extend('{}'), 400);
  await check(await extend('90', 'text/plain'), 415);
  await check(await extend(JSON.stringify({ finishWithinSeconds: 90, pad: 'x'.repeat(40_000) })), 413);
  await pollUntilDone({ url: api.url, apiKey }, accepted.id);
  await check(await extend(JSON.stringify({ finishWithinSeconds: 120 })), 409);
});

test('a job canceled while it is unfinished has no content', async () => {
  const accepted = (await check(await submission({ kind: 'image', prompt: 'openapi, canceled' }), 202)) as {
    id: string;
  };
  await check(await call(CANCEL, { id: accepted.id }), 202);
  assert.equal((await pollUntilDone(api, accepted.id)).status, 'canceled');
  await check(await call(CONTENT, { id: accepted.id }), 409);
});

test('unknown jobs, bad queries and refused submissions answer in their documented shapes', async () => {
  for (const operation of [GET, CONTENT, TEXT, EVENTS, CANCEL, WEBHOOKS, REDELIVER]) {
    await check(await call(operation, { id: 'job_nope' }), 404);
  }
  const extension = { body: '{"finishWithinSeconds":60}', headers: { 'Content-Type': 'application/json' } };
  await check(await call(DEADLINE, { id: 'job_nope', init: extension }), 404);
  await check(await call(LIST, { query: '?limit=0' }), 400);
  await check(await submission({ kind: 'image', prompt: '' }), 400);
  await check(await submission({ kind: 'image', prompt: 'x'.repeat(40_000) }), 413);
  const text = { body: 'a kiln', headers: { 'Content-Type': 'text/plain', 'Idempotency-Key': randomUUID() } };
  await check(await call(SUBMIT, { init: text }), 415);
  const broke = await ctx.createUser({ credits: 0 });
  await check(await submission({ kind: 'image', prompt: 'no credits' }, randomUUID(), broke.apiKey), 402);
  await check(await call(ME), 200);
});

test("a job's webhook deliveries are listed, redelivered, and a pending one is not sent twice", async () => {
  const webhook = { url: receiver.endpoint('openapi') };
  const accepted = (await check(
    await submission({ kind: 'image', prompt: 'openapi, webhook', webhook }),
    202,
  )) as {
    id: string;
  };
  await pollUntilDone(api, accepted.id);
  let delivery: WebhookDelivery | undefined;
  for (const deadline = Date.now() + 20_000; delivery?.status !== 'succeeded';) {
    assert.ok(Date.now() < deadline, `delivery not done: ${JSON.stringify(delivery)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answer = await call(WEBHOOKS, { id: accepted.id });
    delivery = ((await answer.response.clone().json()) as { data: WebhookDelivery[] }).data[0];
    if (delivery?.status === 'succeeded') await check(answer, 200);
    else await answer.response.arrayBuffer();
  }
  receiver.setDown('openapi', true);
  await check(await call(REDELIVER, { id: accepted.id, deliveryId: delivery.id }), 202);
  await check(await call(REDELIVER, { id: accepted.id, deliveryId: delivery.id }), 409);
  await check(await call(REDELIVER, { id: accepted.id, deliveryId: 'whd_unknown' }), 404);
});

test('the webhook secret is read and rotated, and a bad rotation is refused in its documented shape', async () => {
  // A user of its own: this file's main user's secret signs the deliveries the receiver checks.
  const { apiKey } = await ctx.createUser();
  const rotation = (body: string, contentType = 'application/json') =>
    call(ROTATE_SECRET, { apiKey, init: { body, headers: { 'Content-Type': contentType } } });
  await check(await call(WEBHOOK_SECRET, { apiKey }), 200);
  await check(await call(ROTATE_SECRET, { apiKey }), 200);
  await check(await rotation('{"overlapSeconds":60}'), 200);
  await check(await rotation('{"overlapSeconds":-1}'), 400);
  await check(await rotation(JSON.stringify({ overlapSeconds: 60, pad: 'x'.repeat(2048) })), 413);
  await check(await rotation('overlapSeconds=60', 'text/plain'), 415);
});

test('past its burst, an API key is told to wait', async () => {
  const { apiKey } = await ctx.createUser();
  for (let sent = 0; sent < 30; sent++) {
    const answer = await call(SUBMIT, { apiKey });
    if (answer.response.status === 429) {
      await check(answer, 429);
      return;
    }
    await answer.response.arrayBuffer();
  }
  assert.fail('no 429 within 30 submissions');
});

test("past its open sockets and streams, a key's event stream is refused", async () => {
  const { apiKey } = await ctx.createUser();
  const body = { kind: 'image', prompt: 'openapi, streams' };
  const accepted = (await check(await submission(body, randomUUID(), apiKey), 202)) as { id: string };
  const open = await Promise.all(
    Array.from({ length: STREAMS_PER_KEY }, () => openStream({ url: api.url, apiKey })),
  );
  try {
    await check(await call(EVENTS, { id: accepted.id, apiKey }), 429);
  } finally {
    open.forEach(({ socket }) => socket.close());
  }
});

test('the operator API lists, retries and cancels any job, and refuses user keys', async () => {
  const asAdmin = { apiKey: ADMIN_KEY };
  for (const operation of ADMIN) await check(await call(operation), 403);
  await check(await call(STUCK, { ...asAdmin, query: '?idleSeconds=0&limit=5' }), 200);
  await check(await call(STUCK, { ...asAdmin, query: '?limit=0' }), 400);
  await check(await call(PROVIDERS, asAdmin), 200);
  // One credit each job: the first fails (its finish deadline passes mid-call) and is refunded; the
  // second then holds the credit while the first is retried.
  const user = await ctx.createUser({ credits: 1 });
  const slow = { kind: 'image', prompt: 'openapi, too slow', deadline: { finishWithinSeconds: 1 } };
  const failing = (await check(await submission(slow, randomUUID(), user.apiKey), 202)) as { id: string };
  assert.equal((await pollUntilDone({ url: api.url, apiKey: user.apiKey }, failing.id)).status, 'failed');
  // The row is failed a moment before the run closes; only a closed run can be retried.
  const run = ctx.temporal.workflow.getHandle(failing.id);
  while ((await run.describe()).status.name === 'RUNNING') await new Promise((r) => setTimeout(r, 100));
  const holding = (await check(
    await submission({ kind: 'image', prompt: 'openapi, holding' }, randomUUID(), user.apiKey),
    202,
  )) as { id: string };
  await check(await call(RETRY, { ...asAdmin, id: failing.id }), 402);
  await check(await call(ADMIN_CANCEL, { ...asAdmin, id: holding.id }), 202);
  assert.equal((await pollUntilDone({ url: api.url, apiKey: user.apiKey }, holding.id)).status, 'canceled');
  await check(await call(ADMIN_CANCEL, { ...asAdmin, id: holding.id }), 409);
  await check(await call(RETRY, { ...asAdmin, id: failing.id }), 202);
  await check(await call(RETRY, { ...asAdmin, id: holding.id }), 409);
  await check(await call(RETRY, { ...asAdmin, id: 'job_nope' }), 404);
  await check(await call(ADMIN_CANCEL, { ...asAdmin, id: 'job_nope' }), 404);
});

/** Bodies the document and the server must agree on: taken (202), or refused (400). */
const AGREEMENT: [name: string, body: unknown, taken: boolean][] = [
  ['an image job with a size', { kind: 'image', prompt: 'agree', params: { size: '512x512' } }, true],
  ['a text job with a token limit', { kind: 'text', prompt: 'agree', params: { maxTokens: 64 } }, true],
  ['the defaults named', { kind: 'image', prompt: 'agree', provider: 'local', model: 'kiln-sketch-1' }, true],
  ['a prompt in whitespace', { kind: 'text', prompt: ' \u3000agree\n' }, true],
  ['a text job with a size', { kind: 'text', prompt: 'agree', params: { size: '256x256' } }, false],
  ['an image job with a token limit', { kind: 'image', prompt: 'agree', params: { maxTokens: 64 } }, false],
  ['a prompt of whitespace only', { kind: 'image', prompt: ' \t\u3000\ufeff\n' }, false],
  ['a provider not configured here', { kind: 'image', prompt: 'agree', provider: 'openai' }, false],
  ['a model of the other kind', { kind: 'text', prompt: 'agree', model: 'kiln-sketch-1' }, false],
  [
    'a webhook with a password',
    { kind: 'image', prompt: 'agree', webhook: { url: 'https://u:p@a.test/' } },
    false,
  ],
];

test('the submit body is an image or a text request told apart by kind, each with its own params', () => {
  const { GenerationRequest, ImageGenerationRequest, TextGenerationRequest } = document.components.schemas;
  const kinds = {
    image: '#/components/schemas/ImageGenerationRequest',
    text: '#/components/schemas/TextGenerationRequest',
  };
  assert.deepEqual(GenerationRequest?.discriminator, { propertyName: 'kind', mapping: kinds });
  assert.deepEqual(GenerationRequest?.oneOf, [{ $ref: kinds.image }, { $ref: kinds.text }]);
  assert.deepEqual(Object.keys(ImageGenerationRequest?.properties?.params?.properties ?? {}), ['size']);
  assert.deepEqual(Object.keys(TextGenerationRequest?.properties?.params?.properties ?? {}), ['maxTokens']);
});

test('the document and the server take and refuse the same submissions', async () => {
  const validate = ajv.getSchema(`${DOCUMENT_ID}#/components/schemas/GenerationRequest`);
  assert.ok(validate);
  for (const [name, body, taken] of AGREEMENT) {
    assert.equal(validate(body), taken, `${name}: the document ${taken ? 'refuses' : 'takes'} it`);
    // A key of its own each: this file's main key is near its submission burst.
    const { apiKey } = await ctx.createUser();
    await check(await submission(body, randomUUID(), apiKey), taken ? 202 : 400);
  }
  const { pattern = '' } = document.components.schemas.ImageGenerationRequest?.properties?.prompt ?? {};
  assert.doesNotMatch(' \t\r\n\u00a0\u2028\u3000\ufeff', new RegExp(pattern, 'u'));
  assert.match(' \u001c ', new RegExp(pattern, 'u'), 'String#trim keeps U+001C, so the server takes it');
});

test('the providers listing is what the deployment calls, with what each job costs', async () => {
  const listed = await check(await call(OFFERED), 200);
  const everySize = ['256x256', '512x512', '1024x1024'].map((size) => ({ size, credits: 1 }));
  assert.deepEqual(listed, {
    data: [
      {
        name: 'local',
        kind: 'image',
        isDefault: true,
        defaultModel: 'kiln-sketch-1',
        models: [{ name: 'kiln-sketch-1', prices: everySize, tokenPrice: null }],
      },
      {
        name: 'local',
        kind: 'text',
        isDefault: true,
        defaultModel: 'kiln-verse-1',
        models: [{ name: 'kiln-verse-1', prices: [{ size: null, credits: 1 }], tokenPrice: null }],
      },
    ],
  });
  // Priced as a submission is charged: the most specific of provider:model:size, provider:model, provider.
  const costs = { byKey: { 'local:kiln-sketch-1:1024x1024': 3, local: 2 }, fallback: 1, tokens: {} };
  const priced = offeredProviders(configuredProviders(ctx.config), 'local', costs).data;
  assert.deepEqual(
    priced.map((provider) => provider.models[0]?.prices.map(({ credits }) => credits)),
    [[2, 2, 3], [2]],
  );
});

test("the providers, models and sizes are the deployment's, read from its configuration", () => {
  const { ImageGenerationRequest: image, TextGenerationRequest: text } = document.components.schemas;
  assert.deepEqual(image?.properties?.provider?.enum, ['local']);
  assert.deepEqual(image?.properties?.model?.enum, ['kiln-sketch-1']);
  assert.deepEqual(text?.properties?.model?.enum, ['kiln-verse-1']);
  const config = loadConfig({ ...ctx.env, OPENAI_API_KEY: 'sk-test', OPENAI_TEXT_MODELS: 'gpt-4o-mini' });
  const providers = configuredProviders(config);
  const { schemas } = openApiDocument({
    providers,
    defaultProvider: 'local',
    adminApi: false,
    metricsToken: false,
  }).components;
  const withOpenAi = schemas.ImageGenerationRequest as SchemaObject;
  assert.deepEqual(withOpenAi.properties?.provider?.enum, ['local', 'openai']);
  assert.deepEqual((schemas.TextGenerationRequest as SchemaObject).properties?.model?.enum, [
    'kiln-verse-1',
    'gpt-4o-mini',
  ]);
  // Each combination it takes: OpenAI, not the default, must be named; DALL·E 3 makes one size.
  const dallE3 = withOpenAi.anyOf?.find((one) => one.properties?.model?.enum?.includes('dall-e-3'));
  assert.deepEqual(dallE3?.required, ['provider']);
  assert.deepEqual(dallE3?.properties?.params?.properties?.size?.enum, ['1024x1024']);
});

test('the batch tier is offered in the document for the models the price table prices for batches, and no others', () => {
  const prices = {
    'openai:gpt-4o-mini': [
      {
        since: '2026-01-01',
        inputPerMillion: 2,
        outputPerMillion: 6,
        batch: { inputPerMillion: 1, outputPerMillion: 3 },
      },
    ],
  };
  const config = loadConfig({
    ...ctx.env,
    OPENAI_API_KEY: 'sk-test',
    OPENAI_TEXT_MODELS: 'gpt-4o-mini,gpt-4o',
    TEXT_TOKEN_PRICES: JSON.stringify(prices),
  });
  const { schemas } = openApiDocument({
    providers: configuredProviders(config),
    defaultProvider: 'local',
    adminApi: false,
    metricsToken: false,
  }).components;
  const combinations = (schemas.TextGenerationRequest as SchemaObject).anyOf ?? [];
  const batch = combinations.filter((one) => one.properties?.tier?.const === 'batch');
  assert.deepEqual(
    batch.map((one) => [one.properties?.provider?.const, one.properties?.model?.enum]),
    [['openai', ['gpt-4o-mini']]],
  );
  assert.ok(batch[0]?.required?.includes('tier'));
  for (const standard of combinations.filter((one) => one.properties?.tier?.const !== 'batch')) {
    assert.equal(standard.properties?.tier?.const, 'standard');
    assert.deepEqual(standard.properties?.onBatchMiss, { not: {} }, 'no miss policy without the tier');
  }
});

test('the operator API is in the document only where ADMIN_API_KEY is set', async () => {
  const adminPaths = (served: OpenApiDocument) =>
    Object.keys(served.paths).filter((path) => path.includes('/admin/'));
  assert.equal(adminPaths(document).length, ADMIN.length);
  const plain = await createTestContext();
  try {
    const served = (await (
      await fetch(`${(await startApi(plain)).url}/openapi.json`)
    ).json()) as OpenApiDocument;
    assert.deepEqual(adminPaths(served), []);
    assert.equal(served.components.securitySchemes.adminKey, undefined);
    assert.equal(served.components.schemas.StuckJobList, undefined);
    assert.ok(!served.tags.some((tag) => tag.name === 'admin'));
  } finally {
    await plain.cleanup();
  }
});

test('every operation has a summary and listed tags, and the server is where the document is', async () => {
  const tags = new Set(document.tags.map((tag) => tag.name));
  for (const [template, operations] of Object.entries(document.paths)) {
    for (const [method, { summary, tags: its = [] }] of Object.entries(operations)) {
      assert.ok(summary?.trim(), `${method} ${template} has no summary`);
      assert.ok(
        its.length > 0 && its.every((tag) => tags.has(tag)),
        `${method} ${template}: tags [${its.join()}]`,
      );
    }
  }
  assert.deepEqual(
    document.servers.map(({ url }) => url),
    ['/'],
  );
  const base = new URL(document.servers[0]?.url ?? '', `${api.url}/openapi.json`);
  assert.equal((await fetch(new URL('healthz', base))).status, 200);
});

// Last, so that it sees every check the tests above made.
test('every documented (operation, status) was driven live and matched its documented schema', () => {
  assert.equal(validated.length, driven);
  assert.deepEqual([...new Set(validated)].sort(), documentedPairs().sort());
});

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { FieldError } from '../src/api/invalid-request.js';
import type { ServerMessage } from '../src/api/job-stream.js';
import { jobIdFor } from '../src/jobs/job-identity.js';
import { apiFetch, openStream, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { assertErrorShape } from './harness/error-shape.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const VALID = { kind: 'image', prompt: 'a kiln at dusk', params: { size: '256x256' } };
const UNKNOWN_ID = `job_${'0'.repeat(32)}`;
const WEEK = 7 * 24 * 3600;
const JOB_ROUTES = [
  ['GET', ''],
  ['GET', '/content'],
  ['POST', '/cancel'],
] as const;

/** A submission the API must refuse before it records a job or starts a workflow. */
interface Rejection {
  name: string;
  status: number;
  code: string;
  /** Sent as JSON; `raw` sends bytes as they are instead. */
  body?: unknown;
  raw?: string;
  /** Extra or replacing headers; a null value leaves the header out. */
  headers?: Record<string, string | null>;
  /** The Idempotency-Key; a fresh one when absent, no header at all when null. */
  key?: string | null;
  /** For validation errors: the field reported first in `details.fields`. */
  field?: string;
}

/** Bodies that fail the schema: 400 `invalid_request`, naming the first bad field. */
const INVALID_BODIES: [name: string, body: unknown, field: string][] = [
  ['a JSON array', [VALID], '(body)'],
  ['an empty prompt', { ...VALID, prompt: '' }, 'prompt'],
  ['a whitespace-only prompt', { ...VALID, prompt: ' \n\t ' }, 'prompt'],
  ['a 4001-character prompt', { ...VALID, prompt: 'x'.repeat(4001) }, 'prompt'],
  ['a prompt that is a number', { ...VALID, prompt: 42 }, 'prompt'],
  ['no prompt', { kind: 'image' }, 'prompt'],
  ['an unknown kind', { ...VALID, kind: 'video' }, 'kind'],
  ['an unknown field', { ...VALID, colour: 'red' }, '(body)'],
  ['an unknown params field', { ...VALID, params: { size: '256x256', steps: 4 } }, 'params'],
  ['a size Kiln never offers', { ...VALID, params: { size: '300x300' } }, 'params.size'],
  ...(
    [
      ['a zero start deadline', { startWithinSeconds: 0 }, '.startWithinSeconds'],
      ['a negative deadline', { finishWithinSeconds: -5 }, '.finishWithinSeconds'],
      ['a fractional deadline', { finishWithinSeconds: 1.5 }, '.finishWithinSeconds'],
      ['a deadline as a string', { startWithinSeconds: '60' }, '.startWithinSeconds'],
      ['a deadline over a week', { finishWithinSeconds: WEEK + 1 }, '.finishWithinSeconds'],
      ['a null deadline limit', { finishWithinSeconds: null }, '.finishWithinSeconds'],
      ['an unknown deadline field', { withinSeconds: 60 }, ''],
      ['a deadline that is a number', 60, ''],
    ] as const
  ).map(([name, deadline, field]): [string, unknown, string] => [
    name,
    { ...VALID, deadline },
    `deadline${field}`,
  ]),
];

/** Idempotency-Key headers that are refused; null sends none. */
const BAD_KEYS: [name: string, key: string | null, code: string][] = [
  ['no idempotency key', null, 'missing_idempotency_key'],
  ['an empty idempotency key', '', 'invalid_idempotency_key'],
  ['a 256-character idempotency key', 'k'.repeat(256), 'invalid_idempotency_key'],
  ['an idempotency key with a space', 'my key', 'invalid_idempotency_key'],
  ['an idempotency key with a tab', 'my\tkey', 'invalid_idempotency_key'],
  ['a non-ASCII idempotency key', 'clé-1', 'invalid_idempotency_key'],
];

/** Providers, models and sizes the registry does not offer. */
const UNKNOWN_CHOICES: [name: string, body: unknown, code: string][] = [
  ['an unknown provider', { ...VALID, provider: 'midjourney' }, 'unknown_provider'],
  ['an unknown model', { ...VALID, model: 'kiln-sketch-9' }, 'unknown_model'],
  ["another provider's model", { ...VALID, model: 'gpt-image-1' }, 'unknown_model'],
  [
    'a size the model cannot make',
    { ...VALID, provider: 'openai', model: 'gpt-image-1' },
    'unsupported_size',
  ],
];

const UNSUPPORTED = { status: 415, code: 'unsupported_media_type' };

const REJECTIONS: Rejection[] = [
  { name: 'malformed JSON', raw: '{"kind": "image", "prompt": ', status: 400, code: 'malformed_json' },
  { name: 'a text/plain body', headers: { 'Content-Type': 'text/plain' }, ...UNSUPPORTED },
  { name: 'no content type', headers: { 'Content-Type': null }, ...UNSUPPORTED },
  {
    name: 'a Latin-1 charset',
    headers: { 'Content-Type': 'application/json; charset=latin1' },
    ...UNSUPPORTED,
  },
  { name: 'an unknown content encoding', headers: { 'Content-Encoding': 'zz' }, ...UNSUPPORTED },
  { name: 'a corrupt gzip body', headers: { 'Content-Encoding': 'gzip' }, status: 400, code: 'bad_request' },
  {
    name: 'a body over 32 kB',
    body: { ...VALID, prompt: 'x'.repeat(40_000) },
    status: 413,
    code: 'body_too_large',
  },
  ...INVALID_BODIES.map(([name, body, field]) => ({
    name,
    body,
    field,
    status: 400,
    code: 'invalid_request',
  })),
  ...UNKNOWN_CHOICES.map(([name, body, code]) => ({ name, body, status: 400, code })),
  ...BAD_KEYS.map(([name, key, code]) => ({ name, key, status: 400, code })),
];

async function expectError(response: Response, status: number, code: string) {
  const body: unknown = await response.json();
  assert.equal(response.status, status, JSON.stringify(body));
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const error = assertErrorShape(body);
  assert.equal(error.code, code);
  return { status, body };
}

describe('bad input gets one error shape everywhere', () => {
  let ctx: TestContext;
  let api: ApiTarget;
  let ownJobId: string;
  let otherUsersJobId: string;

  before(async () => {
    // The OpenAI provider is registered for its model list only; no job here reaches it.
    ctx = await createTestContext({ OPENAI_API_KEY: 'sk-never-called' });
    api = await startApi(ctx);
    const otherApi = { url: api.url, apiKey: (await ctx.createUser()).apiKey };
    otherUsersJobId = String((await submit(otherApi, VALID, randomUUID())).body.id);
    // VALID itself is accepted, so each rejection is for the one thing its case changes.
    const own = await submit(api, VALID, randomUUID());
    assert.equal(own.status, 202);
    ownJobId = String(own.body.id);
  });
  after(() => ctx.cleanup());

  async function jobCount(): Promise<number> {
    const { count } = await ctx.database.db
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('user_id', '=', ctx.userId)
      .executeTakeFirstOrThrow();
    return Number(count);
  }

  async function workflowExists(idempotencyKey: string): Promise<boolean> {
    try {
      await ctx.temporal.workflow.getHandle(jobIdFor(ctx.userId, idempotencyKey)).describe();
      return true;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      throw error;
    }
  }

  function post(rejection: Rejection, key: string | null): Promise<Response> {
    const headers = new Headers({ 'Content-Type': 'application/json' });
    if (key !== null) headers.set('Idempotency-Key', key);
    for (const [name, value] of Object.entries(rejection.headers ?? {})) {
      if (value === null) headers.delete(name);
      else headers.set(name, value);
    }
    // Bytes, so that fetch adds no Content-Type of its own.
    const body = new TextEncoder().encode(rejection.raw ?? JSON.stringify(rejection.body ?? VALID));
    return apiFetch(api, '/v1/generations', { method: 'POST', headers, body });
  }

  for (const rejection of REJECTIONS) {
    test(`${rejection.name}: ${rejection.status} ${rejection.code}, no job, no workflow`, async () => {
      const key = rejection.key === undefined ? randomUUID() : rejection.key;
      const jobsBefore = await jobCount();
      const { body } = await expectError(await post(rejection, key), rejection.status, rejection.code);
      if (rejection.field) {
        const { details } = assertErrorShape(body) as { details: { fields: { field: string }[] } };
        assert.equal(details.fields[0]?.field, rejection.field);
      }
      assert.equal(await jobCount(), jobsBefore);
      if (key !== null) assert.equal(await workflowExists(key), false);
    });
  }

  for (const [method, path] of JOB_ROUTES) {
    test(`${method} ${path || '/'} of an unknown job is 404, and another user's job gets the same answer`, async () => {
      const unknown = await expectError(
        await apiFetch(api, `/v1/generations/${UNKNOWN_ID}${path}`, { method }),
        404,
        'not_found',
      );
      const response = await apiFetch(api, `/v1/generations/${otherUsersJobId}${path}`, { method });
      assert.deepEqual({ status: response.status, body: await response.json() }, unknown);
    });
  }

  for (const [name, id, status, code] of [
    ['an id of another shape', 'job_x', 404, 'not_found'],
    ['a 2000-character id', 'j'.repeat(2000), 404, 'not_found'],
    ['an id with a NUL byte', 'job_%00', 404, 'not_found'],
    ['an id that is not valid percent-encoding', 'job_%E0%A4%A', 400, 'bad_request'],
  ] as const) {
    test(`${name} is ${status} ${code} on every job route`, async () => {
      for (const [method, path] of JOB_ROUTES) {
        await expectError(await apiFetch(api, `/v1/generations/${id}${path}`, { method }), status, code);
      }
    });
  }

  // No such path is 404; a path that takes other methods is 405, and `Allow` lists them.
  for (const [method, path, allow] of [
    ['GET', '/v1/nothing', null],
    ['GET', `/v1/generations/${UNKNOWN_ID}/a/b`, null],
    ['PUT', '/v1/generations', 'GET, HEAD, POST'],
    ['DELETE', `/v1/generations/${UNKNOWN_ID}`, 'GET, HEAD'],
    ['GET', `/v1/generations/${UNKNOWN_ID}/cancel/`, 'POST'],
    ['POST', `/v1/generations/${UNKNOWN_ID}/content`, 'GET, HEAD'],
    ['PATCH', '/healthz', 'GET, HEAD'],
  ] as const) {
    const [status, code] = allow ? [405, 'method_not_allowed'] : [404, 'not_found'];
    const name = `${method} ${path.replace(UNKNOWN_ID, ':id')} is ${status} ${code}`;
    test(allow ? `${name}, Allow: ${allow}` : name, async () => {
      const response = await apiFetch(api, path, { method });
      assert.equal(response.headers.get('allow'), allow);
      await expectError(response, status, code);
    });
  }

  test('a bad query, event cursor or job parameter names its field in details as a bad body does', async () => {
    const imageWithMaxTokens = { ...VALID, params: { maxTokens: 5 } };
    const answers: [response: Response, field: string][] = [
      [await apiFetch(api, '/v1/generations?limit=0'), 'limit'],
      [await apiFetch(api, '/v1/generations?colour=red'), '(query)'],
      [await apiFetch(api, `/v1/generations/${ownJobId}/events?since=soon`), 'since'],
      [
        await post(
          { name: '', status: 400, code: 'invalid_request', body: imageWithMaxTokens },
          randomUUID(),
        ),
        'params',
      ],
    ];
    for (const [response, field] of answers) {
      const { body } = await expectError(response, 400, 'invalid_request');
      const error = assertErrorShape(body) as { message: string; details: { fields: FieldError[] } };
      const [first] = error.details.fields;
      assert.equal(first?.field, field, JSON.stringify(body));
      assert.equal(error.message, `${field}: ${first?.message}`);
    }
  });

  test('bad socket messages are answered with an error and the socket stays open', async () => {
    const { socket, messages } = await openStream(api);
    let closed = false;
    socket.on('close', () => (closed = true));
    async function replyTo(data: string | Buffer): Promise<ServerMessage> {
      const count = messages.length;
      socket.send(data);
      await waitFor(() => messages.length > count || closed);
      assert.equal(closed, false, `socket closed after ${String(data).slice(0, 60)}`);
      return messages[count] as ServerMessage;
    }
    try {
      for (const [data, code] of [
        ['not json', 'invalid_message'],
        ['[1, 2]', 'invalid_message'],
        [JSON.stringify({ type: 'explode', id: ownJobId }), 'invalid_message'],
        [JSON.stringify({ type: 'subscribe' }), 'invalid_message'],
        [JSON.stringify({ type: 'cancel', id: 42 }), 'invalid_message'],
        [Buffer.from([0xff, 0x00, 0xfe]), 'invalid_message'],
        [JSON.stringify({ type: 'subscribe', id: 'x'.repeat(5000) }), 'message_too_large'],
        [JSON.stringify({ type: 'subscribe', id: 'job_\u0000' }), 'not_found'],
        [JSON.stringify({ type: 'cancel', id: 'job_\u0000' }), 'not_found'],
        [JSON.stringify({ type: 'subscribe', id: otherUsersJobId }), 'not_found'],
      ] as const) {
        const reply = await replyTo(data);
        assert.equal(reply.type, 'error', JSON.stringify(reply));
        assert.deepEqual(
          Object.keys(reply).filter((key) => !['type', 'id', 'error'].includes(key)),
          [],
        );
        assert.equal(assertErrorShape({ error: reply.type === 'error' && reply.error }).code, code);
      }
      const snapshot = await replyTo(JSON.stringify({ type: 'subscribe', id: ownJobId }));
      assert.equal(snapshot.type === 'job' && snapshot.job.id, ownJobId);
    } finally {
      socket.close();
    }
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

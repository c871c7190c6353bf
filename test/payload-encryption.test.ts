import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Payload } from '@temporalio/common';
import { startApiServer } from '../src/api/api-server.js';
import { ConfigError, loadConfig } from '../src/config/index.js';
import {
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  PayloadDecryptionError,
  PayloadEncryptionCodec,
} from '../src/encryption/payload-codec.js';
import { createLogger } from '../src/logger.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { connectTemporalClient } from '../src/temporal-client.js';
import { assertErrorShape } from './harness/error-shape.js';
import { payloadLists, storedText } from './harness/history-payloads.js';
import { apiFetch, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

const ADMIN_KEY = randomBytes(32).toString('base64url');
const KEY_A = `a:${randomBytes(32).toString('base64')}`;
const KEY_B = `b:${randomBytes(32).toString('base64')}`;
const UI_ORIGIN = 'http://localhost:8233';

let stack: OpenAIStack;

before(async () => {
  stack = await startOpenAIStack({
    ADMIN_API_KEY: ADMIN_KEY,
    PAYLOAD_ENCRYPTION_KEYS: KEY_A,
    // One failed call fails a job: the retry test needs a failed one.
    PROVIDER_MAX_CALLS: '1',
  });
});
after(() => stack.stop());

interface JsonPayload {
  metadata: Record<string, string>;
  data: string;
}

const toJson = (payload: Payload): JsonPayload => ({
  metadata: Object.fromEntries(
    Object.entries(payload.metadata ?? {}).map(([key, value]) => [
      key,
      Buffer.from(value).toString('base64'),
    ]),
  ),
  data: Buffer.from(payload.data ?? []).toString('base64'),
});
const metadataOf = (payload: JsonPayload, key: string) =>
  Buffer.from(payload.metadata[key] ?? '', 'base64').toString();
const dataOf = (payload: JsonPayload) => Buffer.from(payload.data, 'base64').toString();

/** A POST to the codec endpoint as the Web UI makes it: JSON, its namespace in X-Namespace. */
function codec(api: ApiTarget, path: string, payloads: JsonPayload[], headers: Record<string, string> = {}) {
  return fetch(`${api.url}/codec${path}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Namespace': stack.ctx.config.temporal.namespace,
      Authorization: `Bearer ${ADMIN_KEY}`,
      ...headers,
    },
    body: JSON.stringify({ payloads }),
  });
}

async function decoded(api: ApiTarget, payloads: JsonPayload[]): Promise<JsonPayload[]> {
  const response = await codec(api, '/decode', payloads);
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { payloads: JsonPayload[] }).payloads;
}

async function succeededJob(prompt: string): Promise<string> {
  const body = { kind: 'image', prompt, provider: 'openai', model: 'dall-e-2', params: { size: '256x256' } };
  const answer = await submit(stack.api, body, randomUUID());
  assert.equal(answer.status, 202, JSON.stringify(answer.body));
  const id = String(answer.body.id);
  assert.equal((await pollUntilDone(stack.api, id)).status, 'succeeded');
  return id;
}

/** Every payload of the job's history, as the server stores it, in the codec protocol's JSON. */
async function storedPayloads(id: string): Promise<{ text: string; payloads: JsonPayload[] }> {
  const history = await stack.ctx.temporal.workflow.getHandle(id).fetchHistory();
  return { text: storedText(history), payloads: payloadLists(history).flat().map(toJson) };
}

describe('payloads in Temporal are encrypted', () => {
  let jobId: string;
  let prompt: string;

  before(async () => {
    prompt = `a secret kiln ${randomUUID()}`;
    jobId = await succeededJob(prompt);
  });

  test("a job's history holds its prompt nowhere in plaintext; the codec endpoint decodes it for the admin key", async () => {
    const stored = await storedPayloads(jobId);
    assert.ok(!stored.text.includes(prompt), 'the prompt is in the stored history');
    assert.ok(stored.payloads.length >= 4, `${stored.payloads.length} payloads`);
    for (const payload of stored.payloads) {
      assert.equal(metadataOf(payload, 'encoding'), ENCRYPTED_ENCODING);
      assert.equal(metadataOf(payload, KEY_ID_METADATA), 'a');
    }

    const plain = await decoded(stack.api, stored.payloads);
    assert.equal(plain.length, stored.payloads.length);
    assert.ok(plain.every((payload) => metadataOf(payload, 'encoding') !== ENCRYPTED_ENCODING));
    // Decoded, the history holds the prompt: the search above would have found it in plaintext.
    assert.ok(storedText(plain.map(dataOf)).includes(prompt), 'the decoded history holds the prompt');
    const inputs = plain
      .filter((payload) => metadataOf(payload, 'encoding') === 'json/plain')
      .map((payload) => JSON.parse(dataOf(payload)) as { request?: { prompt?: string } } | null);
    assert.ok(
      inputs.some((value) => value?.request?.prompt === prompt),
      'the workflow input is whole',
    );
  });

  test('without the admin key the endpoint answers 401, with a user key 403, in the error shape', async () => {
    const { payloads } = await storedPayloads(jobId);
    const none = await codec(stack.api, '/decode', payloads, { Authorization: '' });
    assert.equal(none.status, 401);
    assert.equal(assertErrorShape(await none.json()).code, 'unauthorized');
    // No Basic challenge on the UI's own calls: a browser would hold them on a dialog.
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    const wrong = await codec(stack.api, '/decode', payloads, { Authorization: `Bearer ${'x'.repeat(40)}` });
    assert.equal(wrong.status, 401);
    assert.equal(assertErrorShape(await wrong.json()).code, 'unauthorized');
    const user = await codec(stack.api, '/encode', payloads, { Authorization: `Bearer ${stack.api.apiKey}` });
    assert.equal(user.status, 403);
    assert.equal(assertErrorShape(await user.json()).code, 'forbidden');

    // A browser is challenged for the key (Basic: any user name, the key as password) and sends it after.
    const challenged = await fetch(`${stack.api.url}/codec`);
    assert.equal(challenged.status, 401);
    assert.match(challenged.headers.get('www-authenticate') ?? '', /^Basic realm="Kiln codec"/);
    const basic = `Basic ${Buffer.from(`operator:${ADMIN_KEY}`).toString('base64')}`;
    const signedIn = await fetch(`${stack.api.url}/codec`, { headers: { Authorization: basic } });
    assert.deepEqual(await signedIn.json(), {
      namespace: stack.ctx.config.temporal.namespace,
      encrypted: true,
    });
    const viaBasic = await decoded(stack.api, payloads);
    assert.ok(storedText(viaBasic.map(dataOf)).includes(prompt));
  });

  test("the Web UI's origin gets its preflight answered and may send credentials; another origin is refused", async () => {
    const preflight = await fetch(`${stack.api.url}/codec/decode`, {
      method: 'OPTIONS',
      headers: {
        Origin: UI_ORIGIN,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,x-namespace,authorization',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), UI_ORIGIN);
    assert.equal(preflight.headers.get('access-control-allow-credentials'), 'true');
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const header of ['content-type', 'x-namespace', 'authorization'])
      assert.ok(allowed.includes(header));

    const { payloads } = await storedPayloads(jobId);
    const fromUi = await codec(stack.api, '/decode', payloads, { Origin: UI_ORIGIN });
    assert.equal(fromUi.status, 200);
    assert.equal(fromUi.headers.get('access-control-allow-origin'), UI_ORIGIN);
    const elsewhere = await codec(stack.api, '/decode', payloads, { Origin: 'https://elsewhere.example' });
    assert.equal(elsewhere.status, 403);
    assert.equal(assertErrorShape(await elsewhere.json()).code, 'origin_not_allowed');
    assert.equal(elsewhere.headers.get('access-control-allow-origin'), null);
  });

  test('a payload from another namespace passes unchanged; a malformed body is a 400', async () => {
    const { payloads } = await storedPayloads(jobId);
    const other = await codec(stack.api, '/decode', payloads, { 'X-Namespace': 'someone-else' });
    assert.deepEqual(((await other.json()) as { payloads: JsonPayload[] }).payloads, payloads);
    const malformed = await codec(stack.api, '/decode', [{ metadata: {}, data: '%%%' }]);
    assert.equal(malformed.status, 400);
    assert.equal(assertErrorShape(await malformed.json()).code, 'invalid_request');
  });

  test('a failed job is retried with the input its encrypted history holds', async () => {
    const retried = `retry me ${randomUUID()}`;
    stack.provider.queueBehaviour({ kind: 'server_error', status: 503 }, 1);
    const body = {
      kind: 'image',
      prompt: retried,
      provider: 'openai',
      model: 'dall-e-2',
      params: { size: '256x256' },
    };
    const id = String((await submit(stack.api, body, randomUUID())).body.id);
    assert.equal((await pollUntilDone(stack.api, id)).status, 'failed');
    const handle = stack.ctx.temporal.workflow.getHandle(id);
    for (let i = 0; (await handle.describe()).status.name !== 'FAILED'; i += 1) {
      assert.ok(i < 100, 'the failed run did not close');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const retry = await apiFetch(stack.api, `/v1/admin/jobs/${id}/retry`, { method: 'POST' }, ADMIN_KEY);
    assert.equal(retry.status, 202, await retry.clone().text());
    assert.equal((await pollUntilDone(stack.api, id)).status, 'succeeded');
    assert.equal(stack.provider.countRequests(retried), 2, 'both runs called the provider with the prompt');
  });
});

describe('key rotation', () => {
  test('payloads encrypted under key A still decode once the keys are B,A; new ones are encrypted under B', async () => {
    const prompt = `rotated ${randomUUID()}`;
    const jobId = await succeededJob(prompt);
    const { text, payloads } = await storedPayloads(jobId);
    assert.ok(!text.includes(prompt));
    assert.ok(payloads.every((payload) => metadataOf(payload, KEY_ID_METADATA) === 'a'));

    // A second API whose configuration has rotated: B encrypts, A still decrypts.
    const config = loadConfig({ ...stack.ctx.env, PAYLOAD_ENCRYPTION_KEYS: `${KEY_B},${KEY_A}` });
    const temporal = await connectTemporalClient(config.temporal);
    const server = await startApiServer({
      config,
      database: stack.ctx.database,
      temporal,
      store: stack.ctx.store,
      providers: configuredProviders(config),
      logger: createLogger(config.logLevel, 'rotated-api'),
    });
    try {
      const rotated = { url: server.url, apiKey: stack.api.apiKey };
      assert.ok(storedText((await decoded(rotated, payloads)).map(dataOf)).includes(prompt));

      const plain = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: '' };
      const encodeAnswer = await codec(rotated, '/encode', [plain]);
      const [encoded] = ((await encodeAnswer.json()) as { payloads: JsonPayload[] }).payloads;
      assert.equal(metadataOf(encoded!, KEY_ID_METADATA), 'b');
    } finally {
      await server.close();
      await temporal.connection.close();
    }

    // Once A is dropped, what it encrypted no longer decodes: the endpoint says which key is missing.
    const bOnly = new PayloadEncryptionCodec(
      loadConfig({ PAYLOAD_ENCRYPTION_KEYS: KEY_B }).temporal.payloadKeys,
    );
    const underA = new PayloadEncryptionCodec(
      loadConfig({ PAYLOAD_ENCRYPTION_KEYS: KEY_A }).temporal.payloadKeys,
    );
    const [secret] = await underA.encode([{ metadata: {}, data: Buffer.from(prompt) }]);
    await assert.rejects(bOnly.decode([secret!]), (error) => error instanceof PayloadDecryptionError);
  });

  test('a bad key stops the process at start, naming the variable and never the key', () => {
    const short = `short:${randomBytes(16).toString('base64')}`;
    for (const value of [
      short,
      'no-separator',
      `${KEY_A},${KEY_A}`,
      `bad id:${randomBytes(32).toString('base64')}`,
    ]) {
      assert.throws(
        () => loadConfig({ PAYLOAD_ENCRYPTION_KEYS: value }),
        (error) =>
          error instanceof ConfigError &&
          error.message.includes('PAYLOAD_ENCRYPTION_KEYS') &&
          !error.message.includes(value.slice(value.indexOf(':') + 1)),
      );
    }
    assert.deepEqual(loadConfig({}).temporal.payloadKeys, [], 'unset: plaintext');
    assert.throws(
      () => loadConfig({ CODEC_ALLOWED_ORIGINS: 'http://localhost:8233/' }),
      /CODEC_ALLOWED_ORIGINS/,
    );
  });
});

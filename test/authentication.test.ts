import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { issueApiKey, createUser, revokeApiKeys } from '../src/db/user-repository.js';
import { apiFetch, openStream, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

describe('API keys: who is calling', () => {
  let ctx: TestContext;
  let alice: ApiTarget;
  let bob: ApiTarget;
  let aliceJobId: string;

  before(async () => {
    ctx = await createTestContext();
    await startWorker(ctx);
    alice = await startApi(ctx);
    bob = { url: alice.url, apiKey: (await ctx.createUser()).apiKey };
    const accepted = await submit(
      alice,
      { kind: 'image', prompt: 'alice only', params: { size: '256x256' } },
      'k1',
    );
    aliceJobId = String(accepted.body.id);
    await pollUntilDone(alice, aliceJobId);
  });
  after(() => ctx.cleanup());

  for (const [name, key] of [
    ['no key', null],
    ['an unknown key', 'kiln_not-a-real-key'],
  ] as const) {
    test(`${name} gets 401 in the error shape`, async () => {
      const response = await apiFetch(alice, `/v1/generations/${aliceJobId}`, {}, key);
      assert.equal(response.status, 401);
      assert.equal(response.headers.get('www-authenticate'), 'Bearer');
      assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'unauthorized');
    });
  }

  test("another user's job is answered exactly as an unknown id", async () => {
    const foreign = await apiFetch(bob, `/v1/generations/${aliceJobId}`);
    const unknown = await apiFetch(bob, `/v1/generations/job_0000`);
    assert.equal(foreign.status, 404);
    assert.deepEqual(await foreign.json(), await unknown.json());
    assert.equal((await apiFetch(bob, `/v1/generations/${aliceJobId}/content`)).status, 404);
  });

  test('idempotency keys are scoped per user', async () => {
    const body = { kind: 'image', prompt: 'bob reuses a key', params: { size: '256x256' } };
    const accepted = await submit(bob, body, 'k1');
    assert.equal(accepted.status, 202);
    assert.notEqual(accepted.body.id, aliceJobId);
    assert.equal(accepted.headers.get('idempotent-replayed'), null);
    await pollUntilDone(bob, String(accepted.body.id));
  });

  test('the socket refuses a connection without a valid key', async () => {
    const socket = new WebSocket(`${alice.url.replace(/^http/, 'ws')}/v1/stream`, {
      headers: { Authorization: 'Bearer kiln_wrong' },
    });
    const status = await new Promise<number | undefined>((resolve) => {
      socket.once('unexpected-response', (_req, res) => resolve(res.statusCode));
      socket.once('open', () => resolve(undefined));
    });
    assert.equal(status, 401);
  });

  test('a browser socket offers its key as a subprotocol, and is answered without it', async () => {
    const url = `${alice.url.replace(/^http/, 'ws')}/v1/stream`;
    const opened = (protocols: string[]) => {
      const socket = new WebSocket(url, protocols);
      return new Promise<{ status?: number; protocol?: string }>((resolve) => {
        socket.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
        socket.once('open', () => {
          resolve({ protocol: socket.protocol });
          socket.close();
        });
      });
    };
    assert.deepEqual(await opened(['kiln', `kiln.key.${alice.apiKey}`]), { protocol: 'kiln' });
    assert.deepEqual(await opened(['kiln', 'kiln.key.kiln_wrong']), { status: 401 });
  });

  test("a socket subscription to another user's job is answered as not found", async () => {
    const { socket, messages } = await openStream(bob);
    socket.send(JSON.stringify({ type: 'subscribe', id: aliceJobId }));
    await waitFor(() => messages.length > 0);
    socket.close();
    assert.deepEqual(messages, [
      { type: 'error', id: aliceJobId, error: { code: 'not_found', message: 'no such job' } },
    ]);
  });

  test('a revoked key stops working', async () => {
    const carol = await createUser(ctx.database.db, `carol-${randomUUID()}`);
    const key = await issueApiKey(ctx.database.db, carol.id);
    assert.equal((await apiFetch(alice, '/v1/generations/job_x', {}, key)).status, 404);
    assert.equal(await revokeApiKeys(ctx.database.db, carol.id), 1);
    assert.equal((await apiFetch(alice, '/v1/generations/job_x', {}, key)).status, 401);
  });

  test('a revoked key cannot submit, even straight after a submission that made the API remember it', async () => {
    const dave = await ctx.createUser();
    const target = { url: alice.url, apiKey: dave.apiKey };
    const body = { kind: 'image', prompt: 'dave', params: { size: '256x256' } };
    assert.equal((await submit(target, body, randomUUID())).status, 202);
    assert.equal(await revokeApiKeys(ctx.database.db, dave.userId), 1);
    const refusedKey = randomUUID();
    const refused = await submit(target, body, refusedKey);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
    const rows = await ctx.database.db
      .selectFrom('jobs')
      .select('id')
      .where('idempotency_key', '=', refusedKey)
      .execute();
    assert.deepEqual(rows, [], 'a refused submission creates no job');
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

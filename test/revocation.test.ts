import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import WebSocket from 'ws';
import { API_KEY_REVOKED_CLOSE_CODE, type ServerMessage } from '../src/api/job-stream.js';
import { API_KEY_REVOCATIONS_CHANNEL, revokeApiKeys } from '../src/db/user-repository.js';
import { apiFetch, openStream, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/** Generous: the machine is shared, and the point is "seconds", not a tight bound. */
const ENDS_WITHIN_MS = 10_000;

let ctx: TestContext;
let first: ApiTarget;
let second: ApiTarget;

// No worker: every job stays queued, so its streams stay open until something ends them.
before(async () => {
  ctx = await createTestContext();
  first = await startApi(ctx);
  second = await startApi(ctx);
});
after(() => ctx.cleanup());

interface User {
  userId: string;
  jobId: string;
  on(api: ApiTarget): ApiTarget;
}

async function userWithJob(): Promise<User> {
  const { userId, apiKey } = await ctx.createUser();
  const on = (api: ApiTarget) => ({ url: api.url, apiKey });
  const accepted = await submit(on(first), { kind: 'image', prompt: `revoke ${randomUUID()}` }, randomUUID());
  assert.equal(accepted.status, 202);
  return { userId, jobId: String(accepted.body.id), on };
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what}: not within ${ENDS_WITHIN_MS} ms`)),
      ENDS_WITHIN_MS,
    );
    promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  await within(
    (async () => {
      while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20));
    })(),
    what,
  );
}

/** A socket subscribed to the user's job, once the job's current state has arrived. */
async function watchOverSocket(user: User, api: ApiTarget) {
  const stream = await openStream(user.on(api));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    stream.socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  stream.socket.send(JSON.stringify({ type: 'subscribe', id: user.jobId }));
  await waitFor(() => stream.messages.some((m) => m.type === 'job'), 'the first socket event');
  return { ...stream, closed };
}

/** An SSE stream of the user's job, open once its first event arrived; `ended` resolves when it ends. */
async function watchOverSse(user: User, api: ApiTarget): Promise<{ ended: Promise<string> }> {
  const response = await apiFetch(user.on(api), `/v1/generations/${user.jobId}/events`);
  assert.equal(response.status, 200);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (!text.includes('event: status')) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the stream ended before its first event');
    text += value;
  }
  const ended = (async () => {
    for (let read = await reader.read(); !read.done; read = await reader.read()) text += read.value;
    return text;
  })();
  return { ended };
}

async function socketStatus(api: ApiTarget): Promise<number | undefined> {
  const socket = new WebSocket(`${api.url.replace(/^http/, 'ws')}/v1/stream`, {
    headers: { Authorization: `Bearer ${api.apiKey}` },
  });
  const status = await new Promise<number | undefined>((resolve) => {
    socket.once('unexpected-response', (_req, res) => resolve(res.statusCode));
    socket.once('open', () => resolve(undefined));
  });
  // Ending a refused handshake reports an error; the status was all that was asked.
  socket.once('error', () => undefined);
  socket.terminate();
  return status;
}

const revokedBy = (closed: { code: number; reason: string }) =>
  closed.code === API_KEY_REVOKED_CLOSE_CODE && closed.reason === 'api key revoked';

describe('revoking an API key ends its live sessions', () => {
  test('its sockets close with 4001 and its event streams end, on every API process; others stay', async () => {
    const alice = await userWithJob();
    const bob = await userWithJob();
    const aliceSocket = await watchOverSocket(alice, first);
    const aliceSse = await watchOverSse(alice, second);
    const bobSocket = await watchOverSocket(bob, first);
    const bobSse = await watchOverSse(bob, second);
    let bobSseEnded = false;
    void bobSse.ended.then(() => (bobSseEnded = true));

    assert.equal(await revokeApiKeys(ctx.database.db, alice.userId), 1);

    const closed = await within(aliceSocket.closed, "alice's socket closing");
    assert.ok(revokedBy(closed), `closed with ${closed.code} ${closed.reason}`);
    await within(aliceSse.ended, "alice's event stream ending");
    assert.equal(bobSocket.socket.readyState, WebSocket.OPEN, "bob's socket was closed too");
    assert.equal(bobSseEnded, false, "bob's event stream was ended too");
    bobSocket.socket.close();

    assert.equal(await socketStatus(alice.on(first)), 401);
    const again = await apiFetch(alice.on(second), `/v1/generations/${alice.jobId}/events`);
    assert.equal(again.status, 401);
  });

  test('a cancel sent on the socket once the key is revoked is refused, not acted on', async () => {
    const alice = await userWithJob();
    const socket = await watchOverSocket(alice, first);
    await revokeApiKeys(ctx.database.db, alice.userId);
    // Sent at once: whether the server has heard of the revocation yet or not, the cancel is refused.
    socket.socket.send(JSON.stringify({ type: 'cancel', id: alice.jobId }));
    assert.ok(revokedBy(await within(socket.closed, 'the socket closing')));
    assert.deepEqual(
      socket.messages.filter((m: ServerMessage) => m.type === 'canceling'),
      [],
    );
    // A cancel that was acted on would have reached Temporal well within this.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const { workflow_id } = await ctx.database.db
      .selectFrom('jobs')
      .select('workflow_id')
      .where('id', '=', alice.jobId)
      .executeTakeFirstOrThrow();
    const history = await ctx.temporal.workflow.getHandle(workflow_id).fetchHistory();
    const cancelRequested = (history.events ?? []).filter(
      (e) => e.workflowExecutionCancelRequestedEventAttributes,
    );
    assert.equal(cancelRequested.length, 0, 'the workflow was asked to cancel');
  });

  test('a revocation sent while the LISTEN connection was down still ends sessions', async () => {
    const alice = await userWithJob();
    const socket = await watchOverSocket(alice, first);
    // Ends both API processes' revocation listeners; each reconnects after a short pause.
    await terminateListeners();
    await revokeApiKeys(ctx.database.db, alice.userId);
    const closed = await within(socket.closed, 'the socket closing');
    assert.ok(revokedBy(closed), `closed with ${closed.code} ${closed.reason}`);
  });
});

/** Ends the revocation listeners and waits until their backends are gone: a NOTIFY now reaches no one. */
async function terminateListeners(): Promise<void> {
  const client = new pg.Client({ connectionString: ctx.env.DATABASE_URL });
  await client.connect();
  try {
    const { rowCount } = await client.query(
      `select pg_terminate_backend(pid, 5000) from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and query = $1`,
      [`LISTEN ${pg.escapeIdentifier(API_KEY_REVOCATIONS_CHANNEL)}`],
    );
    assert.equal(rowCount, 2, 'one revocation listener per API process');
  } finally {
    await client.end();
  }
}

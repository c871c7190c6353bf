import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { text } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { ServerMessage } from '../src/api/job-stream.js';
import { assertErrorShape } from './harness/error-shape.js';
import { apiFetch, openStream, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const STREAMS = 2;
const SUBSCRIPTIONS = 3;

let ctx: TestContext;
let api: ApiTarget;

before(async () => {
  ctx = await createTestContext({
    MAX_STREAMS_PER_KEY: String(STREAMS),
    MAX_SUBSCRIPTIONS_PER_KEY: String(SUBSCRIPTIONS),
  });
  // No worker: the jobs stay queued, which is all a subscription needs.
  api = await startApi(ctx);
});
after(() => ctx.cleanup());

async function submitJob(target: ApiTarget = api): Promise<string> {
  const reply = await submit(target, { kind: 'image', prompt: `limits ${randomUUID()}` }, randomUUID());
  assert.equal(reply.status, 202);
  return String(reply.body.id);
}

/** The answer to a socket upgrade the server refused, with its body. */
async function refusedUpgrade(target: ApiTarget): Promise<{ status: number; body: unknown }> {
  const socket = new WebSocket(`${target.url.replace(/^http/, 'ws')}/v1/stream`, {
    headers: { Authorization: `Bearer ${target.apiKey}` },
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => reject(new Error('the socket opened')));
    socket.once('unexpected-response', (_req, res: IncomingMessage) => {
      text(res).then((body) => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }), reject);
    });
  });
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('what one API key may hold open', () => {
  test('sockets and event streams past the limit are refused with 429; a closed one makes room', async () => {
    const jobId = await submitJob();
    const open = await Promise.all(Array.from({ length: STREAMS }, () => openStream(api)));

    const upgrade = await refusedUpgrade(api);
    assert.equal(upgrade.status, 429);
    assert.equal(assertErrorShape(upgrade.body).code, 'too_many_streams');
    const events = await apiFetch(api, `/v1/generations/${jobId}/events`);
    assert.equal(events.status, 429);
    assert.equal(assertErrorShape(await events.json()).code, 'too_many_streams');

    // Another key of the same user is counted apart.
    const other = await openStream({ url: api.url, apiKey: (await ctx.createUser()).apiKey });
    other.socket.close();

    open[0]!.socket.close();
    await eventually(async () => {
      const again = await openStream(api).catch(() => undefined);
      again?.socket.close();
      return again !== undefined;
    });
    open.slice(1).forEach(({ socket }) => socket.close());
  });

  test('subscriptions past the limit are refused on the socket; an unsubscribe makes room', async () => {
    const jobIds = await Promise.all(Array.from({ length: SUBSCRIPTIONS + 1 }, () => submitJob()));
    await eventually(async () => {
      const probe = await openStream(api).catch(() => undefined);
      probe?.socket.close();
      return probe !== undefined;
    });
    const { socket, messages } = await openStream(api);
    const about = (m: ServerMessage) => (m.type === 'job' ? m.job.id : 'id' in m ? m.id : undefined);
    const heardOf = (id: string) => messages.some((m) => about(m) === id);
    for (const id of jobIds) socket.send(JSON.stringify({ type: 'subscribe', id }));
    const last = jobIds.at(-1)!;
    await eventually(() => Promise.resolve(jobIds.every(heardOf)));
    const refusal = messages.find((m) => m.type === 'error' && m.id === last);
    assert.equal(refusal?.type === 'error' ? refusal.error.code : undefined, 'too_many_subscriptions');
    assert.ok(
      jobIds.slice(0, SUBSCRIPTIONS).every((id) => messages.some((m) => m.type === 'job' && m.job.id === id)),
      'the first subscriptions are served',
    );

    socket.send(JSON.stringify({ type: 'unsubscribe', id: jobIds[0] }));
    socket.send(JSON.stringify({ type: 'subscribe', id: last }));
    await eventually(() => Promise.resolve(messages.some((m) => m.type === 'job' && m.job.id === last)));
    socket.close();
  });
});

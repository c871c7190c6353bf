import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { jobEventsAfter } from '../src/db/job-event-repository.js';
import { isTerminal, type Job } from '../src/jobs/job.js';
import type { ServerMessage } from '../src/api/job-stream.js';
import { apiFetch, openStream, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

interface Received {
  seq: number;
  event: string;
  job: Job;
}

let ctx: TestContext;
let api: ApiTarget;

before(async () => {
  // Many progress steps over a couple of seconds: plenty of events to drop connections between.
  ctx = await createTestContext({ LOCAL_PROVIDER_DELAY_MS: '1500', LOCAL_PROVIDER_STEPS: '12' });
  await startWorker(ctx);
  api = await startApi(ctx);
});
after(() => ctx.cleanup());

async function submitJob(target: ApiTarget = api): Promise<string> {
  const reply = await submit(target, { kind: 'image', prompt: `events ${randomUUID()}` }, randomUUID());
  assert.equal(reply.status, 202);
  return String(reply.body.id);
}

/** The events the table holds for a job, as a subscriber should have seen them. */
async function recorded(jobId: string) {
  const events = await jobEventsAfter(ctx.database.db, jobId, 0);
  return events.map((event) => ({ seq: event.seq, event: event.type, status: event.job.status }));
}

const summary = (received: Received[]) =>
  received.map((event) => ({ seq: event.seq, event: event.event, status: event.job.status }));

/** One socket session: subscribes from `since`, gives up after `dropAfter` messages (abruptly). */
function socketSession(
  target: ApiTarget,
  jobId: string,
  since: number,
  dropAfter: number,
): Promise<Received[]> {
  const socket = new WebSocket(`${target.url.replace(/^http/, 'ws')}/v1/stream`, {
    headers: { Authorization: `Bearer ${target.apiKey}` },
  });
  const received: Received[] = [];
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () => socket.send(JSON.stringify({ type: 'subscribe', id: jobId, since })));
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { type: string } & Received;
      if (message.type !== 'job') return reject(new Error(data.toString()));
      received.push(message);
      if (received.length >= dropAfter || isTerminal(message.job.status)) {
        socket.terminate();
        resolve(received);
      }
    });
  });
}

/** Watches a job to its end over sockets dropped after a random number of events each time. */
async function watchWithDrops(
  target: ApiTarget,
  jobId: string,
): Promise<{ received: Received[]; drops: number }> {
  const received: Received[] = [];
  let drops = 0;
  while (!received.some((event) => isTerminal(event.job.status))) {
    received.push(...(await socketSession(target, jobId, received.at(-1)?.seq ?? 0, randomInt(1, 4))));
    drops += 1;
    await new Promise((resolve) => setTimeout(resolve, randomInt(0, 300)));
  }
  return { received, drops };
}

/** Reads `GET /v1/generations/:id/events` until the server ends it or `dropAfter` events came. */
async function sseSession(jobId: string, lastEventId: number | undefined, dropAfter: number) {
  const abort = new AbortController();
  const headers: Record<string, string> =
    lastEventId === undefined ? {} : { 'Last-Event-ID': String(lastEventId) };
  const response = await apiFetch(api, `/v1/generations/${jobId}/events`, { headers, signal: abort.signal });
  const received: Received[] = [];
  if (response.status === 204) return { status: 204, received };
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  let buffer = '';
  try {
    for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const fields = Object.fromEntries(
          buffer
            .slice(0, end)
            .split('\n')
            .filter((line) => !line.startsWith(':') && line.includes(': '))
            .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
        );
        buffer = buffer.slice(end + 2);
        if (fields.id === undefined) continue;
        received.push({
          seq: Number(fields.id),
          event: String(fields.event),
          job: JSON.parse(String(fields.data)) as Job,
        });
        if (received.length >= dropAfter) {
          abort.abort();
          return { status: response.status, received };
        }
      }
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  }
  return { status: response.status, received };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; !condition();) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function assertGapless(received: Received[]) {
  assert.deepEqual(
    received.map((event) => event.seq),
    received.map((_, i) => i + 1),
    'seq runs 1, 2, 3… with no gap and no repeat',
  );
}

describe('job events', () => {
  test('sockets dropped at random points over many jobs lose and repeat nothing', async () => {
    const ids = await Promise.all(Array.from({ length: 6 }, () => submitJob()));
    const watched = await Promise.all(ids.map((id) => watchWithDrops(api, id)));
    for (const [i, { received }] of watched.entries()) {
      assertGapless(received);
      assert.equal(received.at(-1)!.job.status, 'succeeded');
      assert.ok(received.some((event) => event.event === 'progress'));
      assert.deepEqual(summary(received), await recorded(ids[i]!));
    }
    const drops = watched.reduce((sum, { drops }) => sum + drops, 0);
    assert.ok(drops >= ids.length * 3, `only ${drops} reconnects`);
  });

  test('Server-Sent Events tell the same story and resume from Last-Event-ID', async () => {
    const id = await submitJob();
    const received: Received[] = [];
    for (;;) {
      const session = await sseSession(id, received.at(-1)?.seq, randomInt(1, 4));
      if (session.status === 204) break;
      received.push(...session.received);
    }
    assertGapless(received);
    assert.equal(received.at(-1)!.job.status, 'succeeded');
    assert.deepEqual(summary(received), await recorded(id));
    const fromStart = await sseSession(id, undefined, Infinity);
    assert.deepEqual(summary(fromStart.received), summary(received), 'a late reader gets the whole story');
  });

  test('a socket subscription ends with subscription_ended, at once for a job that has ended', async () => {
    const id = await submitJob();
    const { socket, messages } = await openStream(api);
    const ended = (from: number) => messages.slice(from).some((m) => m.type === 'subscription_ended');
    const subscribe = async (since: number): Promise<ServerMessage[]> => {
      const from = messages.length;
      socket.send(JSON.stringify({ type: 'subscribe', id, since }));
      await until(() => ended(from), `the end of a subscription since ${since}`);
      return messages.slice(from);
    };
    try {
      const live = await subscribe(0);
      const last = live.at(-2);
      assert.ok(last?.type === 'job' && last.job.status === 'succeeded', JSON.stringify(live.slice(-2)));
      assert.deepEqual(live.at(-1), { type: 'subscription_ended', id, status: 'succeeded' });
      assert.deepEqual(summary(live.flatMap((m) => (m.type === 'job' ? [m] : []))), await recorded(id));
      assert.deepEqual(await subscribe(last.seq), [live.at(-1)], 'nothing after since: the end alone');
      assert.deepEqual(await subscribe(0), live, 'from the start: the whole story, then the end');
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(messages.length, 2 * live.length + 1, 'nothing after the end');
      const sse = await apiFetch(api, `/v1/generations/${id}/events?since=${last.seq}`);
      assert.equal(sse.status, 204, 'SSE has nothing to send either');
    } finally {
      socket.close();
    }
  });

  test('any API process serves any subscriber: events fan out through Postgres', async () => {
    const other = await startApi(ctx);
    const id = await submitJob(api);
    const { received } = await watchWithDrops(other, id);
    assertGapless(received);
    assert.deepEqual(summary(received), await recorded(id));
  });

  test('the plain GET agrees with the last event', async () => {
    const id = await submitJob();
    const { received } = await watchWithDrops(api, id);
    const job = (await (await apiFetch(api, `/v1/generations/${id}`)).json()) as Job;
    assert.equal(job.version, received.at(-1)!.seq);
    // The GET adds what the ledger says of its credits, which events leave out.
    const { credits, ...shown } = job;
    assert.deepEqual(shown, received.at(-1)!.job);
    assert.deepEqual(credits, { reserved: 1, settled: 1, refunded: 0 });
  });
});

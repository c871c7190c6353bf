import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createKilnClient, KilnApiError, type KilnClient } from '../src/client/kiln-client.js';
import { jobEventsAfter } from '../src/db/job-event-repository.js';
import type { JobEvent } from '../src/events/job-event.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';
import type { ApiTarget } from './harness/job-watcher.js';

let ctx: TestContext;
let api: ApiTarget;
let client: KilnClient;

before(async () => {
  ctx = await createTestContext({ LOCAL_PROVIDER_DELAY_MS: '1200', LOCAL_PROVIDER_STEPS: '10' });
  await startWorker(ctx);
  api = await startApi(ctx);
  client = createKilnClient({ baseUrl: api.url, apiKey: api.apiKey, pollIntervalMs: 200 });
});
after(() => ctx.cleanup());

const body = { kind: 'image' as const, prompt: 'a client kiln', params: { size: '256x256' as const } };

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

async function recorded(jobId: string) {
  return (await jobEventsAfter(ctx.database.db, jobId, 0)).map((event) => [event.seq, event.type]);
}

const isEventStream = (input: Parameters<typeof fetch>[0]) =>
  (input instanceof Request ? input.url : input.toString()).endsWith('/events');

/** fetch whose event streams break after a random few hundred ms: the network a mobile client has. */
function breakingFetch(): { fetch: typeof fetch; streams: () => number } {
  let streams = 0;
  const wrapped: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!isEventStream(input) || !response.body) return response;
    streams += 1;
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const breakAt = Date.now() + randomInt(100, 400);
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (Date.now() > breakAt) {
          await reader.cancel();
          controller.error(new TypeError('network connection lost'));
          return;
        }
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return { fetch: wrapped, streams: () => streams };
}

describe('the typed client', () => {
  test('submit generates an idempotency key, and resubmitting with it replays the same job', async () => {
    const first = await client.submit(body);
    assert.match(first.idempotencyKey, /^[0-9a-f-]{36}$/);
    assert.equal(first.replayed, false);
    assert.equal(first.queuePosition >= 0, true);
    const again = await client.submit(body, first.idempotencyKey);
    assert.equal(again.id, first.id);
    assert.equal(again.replayed, true);
    const events = await collect(client.watch(first.id));
    assert.equal(events.at(-1)?.job.status, 'succeeded');
    assert.equal((await client.content(first.id)).type, 'image/png');
  });

  test('get, list with a cursor, cancel and errors as KilnApiError', async () => {
    const ids = [(await client.submit(body)).id, (await client.submit(body)).id];
    const firstPage = await client.list({ limit: 1 });
    assert.equal(firstPage.data.length, 1);
    const secondPage = await client.list({ limit: 1, cursor: firstPage.nextCursor! });
    assert.notEqual(secondPage.data[0]!.id, firstPage.data[0]!.id);
    assert.equal((await client.get(ids[0]!)).id, ids[0]);
    assert.equal((await client.cancel(ids[1]!)).id, ids[1]);
    const last = (await collect(client.watch(ids[1]!))).at(-1);
    assert.equal(last?.job.status, 'canceled');
    const missing = await client.get('job_nope').catch((error: unknown) => error);
    assert.ok(missing instanceof KilnApiError);
    assert.deepEqual([missing.status, missing.code], [404, 'not_found']);
    const me = await client.me();
    assert.equal(me.id, ctx.userId);
  });

  test('watch resumes by seq over a network that keeps dropping the stream: nothing lost or repeated', async () => {
    const network = breakingFetch();
    const flaky = createKilnClient({ baseUrl: api.url, apiKey: api.apiKey, fetch: network.fetch });
    const ids = await Promise.all([1, 2, 3].map(async () => (await client.submit(body)).id));
    let reconnects = 0;
    const watched = await Promise.all(
      ids.map((id) => collect(flaky.watch(id, { onReconnecting: () => (reconnects += 1) }))),
    );
    for (const [i, events] of watched.entries()) {
      assert.deepEqual(
        events.map((event) => event.seq),
        events.map((_, n) => n + 1),
      );
      assert.deepEqual(
        events.map((event) => [event.seq, event.type]),
        await recorded(ids[i]!),
      );
      assert.equal(events.at(-1)?.job.status, 'succeeded');
    }
    assert.ok(reconnects >= ids.length, `only ${reconnects} reconnects`);
    assert.ok(network.streams() > ids.length);
  });

  test('watch falls back to polling when the event stream is out of reach', async () => {
    let refused = 0;
    const noStreams: typeof fetch = (input, init) => {
      if (!isEventStream(input)) return fetch(input, init);
      refused += 1;
      return Promise.resolve(new Response('bad gateway', { status: 502 }));
    };
    const polling = createKilnClient({
      baseUrl: api.url,
      apiKey: api.apiKey,
      fetch: noStreams,
      pollIntervalMs: 100,
    });
    const { id } = await client.submit(body);
    const events = await collect(polling.watch(id));
    const seqs = events.map((event) => event.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(new Set(seqs).size, seqs.length, 'no event twice');
    assert.equal(events.at(-1)?.job.status, 'succeeded');
    assert.deepEqual(events.at(-1)?.job, await client.get(id));
    assert.ok(refused >= 2);
    assert.ok(events.length >= 2, 'polling saw the job move');
  });

  test('watch of a finished job from its last seq ends at once; since 0 tells the whole story', async () => {
    const { id } = await client.submit(body, randomUUID());
    const story = await collect(client.watch(id));
    assert.deepEqual(await collect(client.watch(id, { since: story.at(-1)!.seq })), []);
    assert.deepEqual(
      (await collect(client.watch(id))).map((event) => event.seq),
      story.map((event) => event.seq),
    );
  });
});

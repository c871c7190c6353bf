import assert from 'node:assert/strict';
import { createHash, randomInt, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  createKilnClient,
  KilnApiError,
  KilnJobError,
  type KilnClient,
  type QueueUpdate,
  type TextToken,
} from '../src/client/index.js';
import { jobEventsAfter } from '../src/db/job-event-repository.js';
import type { JobEvent } from '../src/events/job-event.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';
import type { ApiTarget } from './harness/job-watcher.js';

let ctx: TestContext;
let api: ApiTarget;
let client: KilnClient;

before(async () => {
  ctx = await createTestContext({
    LOCAL_PROVIDER_DELAY_MS: '1200',
    LOCAL_PROVIDER_STEPS: '10',
    // `single`: one running job at a time, so that a second one can be made to miss its start deadline.
    PLANS: JSON.stringify({ free: { maxRunning: 50, weight: 1 }, single: { maxRunning: 1, weight: 1 } }),
  });
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
    const again = await client.submit(body, { idempotencyKey: first.idempotencyKey });
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
    const { id } = await client.submit(body, { idempotencyKey: randomUUID() });
    const story = await collect(client.watch(id));
    assert.deepEqual(await collect(client.watch(id, { since: story.at(-1)!.seq })), []);
    assert.deepEqual(
      (await collect(client.watch(id))).map((event) => event.seq),
      story.map((event) => event.seq),
    );
  });
});

describe('run', () => {
  test('resolves to the image and its job, telling the queue position first, then progress', async () => {
    const updates: QueueUpdate[] = [];
    const result = await client.run(body, { onQueueUpdate: (update) => updates.push(update) });
    assert.equal(result.job.status, 'succeeded');
    assert.equal(result.image.type, 'image/png');
    const bytes = Buffer.from(await result.image.arrayBuffer());
    assert.equal(createHash('sha256').update(bytes).digest('hex'), result.job.result?.sha256);
    const [queued, ...running] = updates;
    assert.equal(queued?.status, 'queued');
    assert.ok(queued.queuePosition >= 0 && queued.estimatedWaitSeconds >= 0);
    assert.ok(running.length >= 2, `${running.length} running updates`);
    const progress = running.map((update) => (update.status === 'queued' ? -1 : update.progress));
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
    );
    assert.equal(progress.at(-1), 100);
  });

  test("streams a text job's tokens, which add up to its text", async () => {
    const tokens: TextToken[] = [];
    const result = await client.run(
      { kind: 'text', prompt: 'a client kiln, in words' },
      { onToken: (token) => tokens.push(token) },
    );
    assert.equal(result.job.kind, 'text');
    assert.ok(tokens.length > 1, `${tokens.length} tokens`);
    assert.ok(tokens.every((token) => !token.restarted));
    assert.equal(tokens.map((token) => token.delta).join(''), result.text);
    assert.equal(tokens.at(-1)?.text, result.text);
    assert.equal(result.text, await (await client.content(result.job.id)).text());
  });

  test('throws KilnJobError with the failure code for a failed job', async () => {
    const late = { ...body, deadline: { finishWithinSeconds: 1 } };
    const error = await client.run(late).catch((caught: unknown) => caught);
    assert.ok(error instanceof KilnJobError, String(error));
    assert.deepEqual([error.code, error.job.status], ['deadline_exceeded', 'failed']);
    assert.equal(error.message, error.job.failure?.message);
  });

  test('throws KilnJobError canceled for a job canceled while it runs', async () => {
    let canceling: Promise<unknown> | undefined;
    const error = await client
      .run(body, {
        onQueueUpdate: (update) => {
          if (update.status === 'running') canceling ??= client.cancel(update.id);
        },
      })
      .catch((caught: unknown) => caught);
    assert.ok(canceling, 'the job was seen running');
    await canceling;
    assert.ok(error instanceof KilnJobError, String(error));
    assert.deepEqual([error.code, error.job.status], ['canceled', 'canceled']);
  });

  test('throws KilnJobError expired for a job that could not start by its start deadline', async () => {
    // A user with one running slot, taken by two jobs of 1.2 s each: the third cannot start within 1 s.
    const { apiKey } = await ctx.createUser({ plan: 'single' });
    const single = createKilnClient({ baseUrl: api.url, apiKey });
    const blockers = [await single.submit(body), await single.submit(body)];
    const error = await single
      .run({ ...body, deadline: { startWithinSeconds: 1 } })
      .catch((caught: unknown) => caught);
    assert.ok(error instanceof KilnJobError, String(error));
    assert.deepEqual([error.code, error.job.status, error.job.attempts], ['expired', 'expired', 0]);
    for (const { id } of blockers)
      assert.equal((await collect(single.watch(id))).at(-1)?.job.status, 'succeeded');
  });
});

describe('Prefer: wait', () => {
  const post = (prefer: string, idempotencyKey = randomUUID()) =>
    fetch(`${api.url}/v1/generations`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${api.apiKey}`,
        'Content-Type': 'application/json',
        'Idempotency-Key': idempotencyKey,
        Prefer: prefer,
      },
      body: JSON.stringify(body),
    });

  test('submit with wait answers with the job once it has ended, as soon as it has', async () => {
    const submitted = await client.submit(body, { wait: 30 });
    assert.ok(submitted.ended, 'ended within the wait');
    assert.equal(submitted.job.status, 'succeeded');
    const sinceEnd = Date.now() - Date.parse(submitted.job.completedAt!);
    assert.ok(sinceEnd < 1000, `answered ${sinceEnd} ms after the job ended`);
    const replay = await client.submit(body, { idempotencyKey: submitted.idempotencyKey, wait: 5 });
    assert.deepEqual([replay.ended, replay.replayed, replay.id], [true, true, submitted.id]);
    await assert.rejects(client.submit(body, { wait: 1.5 }), RangeError);
  });

  test('a job not ended in time is the usual 202 after the wait; the wait is capped at 60 s', async () => {
    const startedAt = Date.now();
    const held = await post('wait=1');
    const heldMs = Date.now() - startedAt;
    assert.equal(held.status, 202);
    assert.equal(held.headers.get('Preference-Applied'), 'wait=1');
    assert.ok(heldMs >= 950, `held ${heldMs} ms`);
    assert.equal(((await held.json()) as { status: string }).status, 'queued');
    const capped = await post('respond-async, wait=600');
    assert.equal(capped.headers.get('Preference-Applied'), 'wait=60');
    assert.equal(capped.status, 200);
    assert.equal(((await capped.json()) as { status: string }).status, 'succeeded');
  });

  test('a wait that is not whole seconds is ignored: an ordinary 202 at once', async () => {
    const ignored = await post('wait=soon');
    assert.equal(ignored.status, 202);
    assert.equal(ignored.headers.get('Preference-Applied'), null);
    await ignored.arrayBuffer();
  });
});

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { findJob, toJob } from '../src/db/job-repository.js';
import { decodeChannelMessage, JOB_EVENTS_CHANNEL } from '../src/events/job-event.js';
import type { Job } from '../src/jobs/job.js';
import { apiFetch, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const body = (prompt: string, extra: object = {}) => ({
  kind: 'image',
  prompt,
  params: { size: '256x256' },
  ...extra,
});

// No worker: every job stays as its submission wrote it.
describe('what a submission writes, in the one statement that records it', () => {
  let ctx: TestContext;
  let api: ApiTarget;
  before(async () => {
    ctx = await createTestContext({ WEBHOOK_ALLOW_PRIVATE: 'true' });
    api = await startApi(ctx);
  });
  after(() => ctx.cleanup());

  async function credits(userId: string): Promise<number> {
    const user = await ctx.database.db
      .selectFrom('users')
      .select('credits')
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    return user.credits;
  }

  test('the first event, as stored and as announced, is the job as it is read back', async () => {
    const listener = new pg.Client({ connectionString: ctx.config.database.url });
    await listener.connect();
    const announced: string[] = [];
    listener.on('notification', (message) => announced.push(message.payload ?? ''));
    await listener.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
    try {
      const accepted = await submit(api, body('first event'), randomUUID());
      assert.equal(accepted.status, 202);
      const id = String(accepted.body.id);
      const job = toJob((await findJob(ctx.database.db, id))!);
      const stored = await ctx.database.db
        .selectFrom('job_events')
        .select(['seq', 'type', 'data'])
        .where('job_id', '=', id)
        .execute();
      assert.deepEqual(stored, [{ seq: 1, type: 'status', data: job }]);
      const deadline = Date.now() + 5000;
      while (!announced.some((payload) => payload.includes(id)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const payload = announced.find((text) => text.includes(id));
      assert.ok(payload, 'the event was announced');
      assert.deepEqual(decodeChannelMessage(payload), {
        kind: 'event',
        event: { seq: 1, type: 'status', job },
      });
      const response = await apiFetch(api, `/v1/generations/${id}`);
      // The GET adds what the ledger says of its credits and, while it is queued, where it stands.
      const { credits, queue, ...shown } = (await response.json()) as Job;
      assert.deepEqual(shown, job);
      assert.deepEqual(credits, { reserved: 1, settled: null, refunded: null });
      assert.equal(typeof queue?.queuePosition, 'number');
    } finally {
      await listener.end();
    }
  });

  test('a webhook that asks for queued gets that delivery, with the job as read back, and a secret', async () => {
    const { userId, apiKey } = await ctx.createUser({ credits: 100 });
    const webhook = { url: 'http://127.0.0.1:9/hook', events: ['queued'] };
    const accepted = await submit({ url: api.url, apiKey }, body('queued hook', { webhook }), randomUUID());
    assert.equal(accepted.status, 202);
    const id = String(accepted.body.id);
    const delivery = await ctx.database.db
      .selectFrom('webhook_deliveries')
      .select(['seq', 'event_type', 'url', 'payload'])
      .where('job_id', '=', id)
      .executeTakeFirstOrThrow();
    assert.deepEqual([delivery.seq, delivery.event_type, delivery.url], [1, 'status', webhook.url]);
    const payload = JSON.parse(delivery.payload) as { type: string; seq: number; data: unknown };
    assert.deepEqual([payload.type, payload.seq], ['job.status', 1]);
    assert.deepEqual(payload.data, toJob((await findJob(ctx.database.db, id))!));
    const user = await ctx.database.db
      .selectFrom('users')
      .select(['webhook_secret', 'webhook_secret_created_at'])
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    assert.match(user.webhook_secret ?? '', /^whsec_/);
    assert.ok(user.webhook_secret_created_at);
  });

  test('the cost is reserved once: a replay reserves nothing, and a refusal reserves and creates nothing', async () => {
    const { userId, apiKey } = await ctx.createUser({ credits: 15 });
    const target = { url: api.url, apiKey };
    const key = randomUUID();
    const accepted = await submit(target, body('paid once'), key);
    assert.equal(accepted.status, 202);
    const cost = 15 - (await credits(userId));
    assert.ok(cost > 0 && cost <= 15, `a job costs ${cost}`);
    const replayed = await submit(target, body('paid once'), key);
    assert.equal(replayed.status, 202);
    assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
    assert.equal(replayed.body.id, accepted.body.id);
    assert.equal(await credits(userId), 15 - cost);
    const ledger = await ctx.database.db
      .selectFrom('credit_ledger')
      .select(['job_id', 'kind', 'amount'])
      .where('user_id', '=', userId)
      .where('kind', '=', 'reserve')
      .execute();
    assert.deepEqual(ledger, [{ job_id: accepted.body.id, kind: 'reserve', amount: -cost }]);

    for (let balance = 15 - cost; balance >= cost; balance -= cost) {
      assert.equal((await submit(target, body(`spend ${balance}`), randomUUID())).status, 202);
    }
    const refusedKey = randomUUID();
    const refused = await submit(target, body('one too many'), refusedKey);
    assert.equal(refused.status, 402);
    const jobs = await ctx.database.db
      .selectFrom('jobs')
      .select('id')
      .where('idempotency_key', '=', refusedKey)
      .execute();
    assert.deepEqual(jobs, []);
  });

  test('concurrent submissions of one key land on one job, reserved once', async () => {
    const { userId, apiKey } = await ctx.createUser({ credits: 1000 });
    const target = { url: api.url, apiKey };
    const key = randomUUID();
    const replies = await Promise.all(Array.from({ length: 8 }, () => submit(target, body('racing'), key)));
    assert.ok(replies.every((reply) => reply.status === 202));
    assert.equal(new Set(replies.map((reply) => reply.body.id)).size, 1);
    assert.equal(replies.filter((reply) => reply.headers.get('idempotent-replayed') === null).length, 1);
    const reserves = await ctx.database.db
      .selectFrom('credit_ledger')
      .select(['amount'])
      .where('user_id', '=', userId)
      .where('kind', '=', 'reserve')
      .execute();
    assert.equal(reserves.length, 1);
    assert.equal(await credits(userId), 1000 + reserves[0]!.amount);
  });
});

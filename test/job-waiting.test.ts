import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import type { ServerMessage } from '../src/api/job-stream.js';
import type { Job, JobWaiting } from '../src/jobs/job.js';
import {
  apiFetch,
  getJob,
  openStream,
  pollUntilDone,
  submit,
  type ApiTarget,
} from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/*
 * Why a job waits, through the API: on GET (asked live of the workflow, the row when the workflow
 * cannot answer), as numbered `waiting` events on the socket; and a client's deadline extension, over
 * the socket and over HTTP. Real API, worker, Temporal and Postgres; the local provider takes 1.5 s.
 */

const JOB_MS = 1500;

let ctx: TestContext;
let api: ApiTarget;
let worker: { stop(): Promise<void> };
/** A user who may run one job at a time: its second job waits for admission. */
let solo: ApiTarget;

before(async () => {
  ctx = await createTestContext({
    LOCAL_PROVIDER_DELAY_MS: String(JOB_MS),
    LOCAL_PROVIDER_STEPS: '1',
    PROVIDER_LIMITS: JSON.stringify({ local: { rpm: 60_000, concurrency: 1 } }),
    PLANS: JSON.stringify({ free: { maxRunning: 8, weight: 1 }, solo: { maxRunning: 1, weight: 1 } }),
  });
  worker = await startWorker(ctx);
  api = await startApi(ctx);
  solo = { url: api.url, apiKey: (await ctx.createUser({ plan: 'solo' })).apiKey };
});
after(() => ctx.cleanup());

const imageBody = (extra: Record<string, unknown> = {}) => ({
  kind: 'image',
  prompt: `waiting ${randomUUID()}`,
  params: { size: '256x256' },
  ...extra,
});

async function submitJob(target: ApiTarget, extra?: Record<string, unknown>): Promise<string> {
  const reply = await submit(target, imageBody(extra), randomUUID());
  assert.equal(reply.status, 202, JSON.stringify(reply.body));
  return String(reply.body.id);
}

/** Polls GET until the job waits as `done` says, and returns what it said. */
async function waitingWhen(
  target: ApiTarget,
  jobId: string,
  done: (waiting: JobWaiting) => boolean,
): Promise<JobWaiting> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { waiting, status } = await getJob(target, jobId);
    if (waiting && done(waiting)) return waiting;
    if (Date.now() > deadline) assert.fail(`${jobId} is ${status}, waiting ${JSON.stringify(waiting)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const jobMessages = (messages: ServerMessage[], id: string) =>
  messages.flatMap((m) => (m.type === 'job' && m.job.id === id ? [m] : []));

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('why a job waits', () => {
  test('held for its user’s running slot: said on GET and as a numbered waiting event, and no more once it runs', async () => {
    const { socket, messages } = await openStream(solo);
    try {
      const first = await submitJob(solo);
      const second = await submitJob(solo);
      socket.send(JSON.stringify({ type: 'subscribe', id: second }));
      const waiting = await waitingWhen(solo, second, (w) => w.reason === 'admission');
      assert.equal(waiting.attempt, 1);
      assert.equal(waiting.maxCalls, ctx.config.retry.maxCalls);

      await pollUntilDone(solo, first);
      const ended = await until('the second job’s end', () =>
        messages.find((m) => m.type === 'subscription_ended' && m.id === second),
      );
      assert.equal(ended.type === 'subscription_ended' && ended.status, 'succeeded');
      const events = jobMessages(messages, second);
      assert.deepEqual(
        events.map((e) => e.seq),
        events.map((_, i) => i + 1),
        'one event per seq, none missing',
      );
      const told = events.find((e) => e.event === 'waiting');
      assert.equal(told?.job.waiting?.reason, 'admission');
      assert.equal(told.job.status, 'queued');
      const running = events.find((e) => e.job.status === 'running');
      assert.equal(running?.job.waiting, null, 'a job that runs waits no more');
      assert.equal(events.at(-1)?.job.waiting, null);
    } finally {
      socket.close();
    }
  });

  test('behind another user’s call for the provider’s one slot: provider_slot, as Temporal’s queue tells', async () => {
    const other = { url: api.url, apiKey: (await ctx.createUser()).apiKey };
    const first = await submitJob(api);
    // Running first for sure: with both queued, fairness may dispatch either user's call first.
    await until(
      'the first job running',
      async () => (await getJob(api, first)).status === 'running' || undefined,
    );
    const second = await submitJob(other);
    const waiting = await waitingWhen(other, second, (w) => w.reason === 'provider_slot');
    // Its call waits in the provider's task queue, not yet started: since it was asked for, until unknown.
    assert.deepEqual(
      { ...waiting, since: undefined },
      {
        reason: 'provider_slot',
        since: undefined,
        until: null,
        attempt: 1,
        maxCalls: ctx.config.retry.maxCalls,
      },
    );
    await Promise.all([pollUntilDone(api, first), pollUntilDone(other, second)]);
    assert.equal((await getJob(other, second)).waiting, null);
  });
});

describe('a client extends a deadline', () => {
  test('over the socket: acknowledged, and the job finishes past its first finish deadline', async () => {
    const { socket, messages } = await openStream(solo);
    try {
      // Behind the user's running job, neither can finish within 2 s of its submission: only the
      // extended one may.
      const ahead = await submitJob(solo);
      const extended = await submitJob(solo, { deadline: { finishWithinSeconds: 2 } });
      const control = await submitJob(solo, { deadline: { finishWithinSeconds: 2 } });
      socket.send(
        JSON.stringify({ type: 'extend_deadline', id: extended, deadline: { finishWithinSeconds: 120 } }),
      );
      const ack = await until('the acknowledgement', () =>
        messages.find((m) => m.type !== 'job' && 'id' in m && m.id === extended),
      );
      assert.deepEqual(ack, {
        type: 'deadline_extended',
        id: extended,
        deadline: { finishWithinSeconds: 120 },
      });

      const [aheadJob, extendedJob, controlJob] = await Promise.all(
        [ahead, extended, control].map((id) => pollUntilDone(solo, id)),
      );
      assert.equal(aheadJob?.status, 'succeeded');
      assert.equal(extendedJob?.status, 'succeeded');
      assert.equal(controlJob?.status, 'failed');
      assert.equal(controlJob?.failure?.code, 'deadline_exceeded');
    } finally {
      socket.close();
    }
  });

  test('over HTTP: a later deadline is answered with the deadlines now held; an earlier one is refused', async () => {
    const id = await submitJob(api, { deadline: { finishWithinSeconds: 60 } });
    const extend = (body: unknown) =>
      apiFetch(api, `/v1/generations/${id}/deadline`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const later = await extend({ finishWithinSeconds: 90 });
    assert.equal(later.status, 200);
    assert.deepEqual(await later.json(), { id, deadline: { finishWithinSeconds: 90 } });

    const refusals: [unknown, number, string][] = [
      [{ finishWithinSeconds: 30 }, 409, 'deadline_shortened'],
      [{ startWithinSeconds: 30 }, 409, 'no_such_deadline'],
      [{}, 400, 'invalid_request'],
    ];
    for (const [body, status, code] of refusals) {
      const response = await extend(body);
      const answer = (await response.json()) as { error: { code: string } };
      assert.deepEqual([response.status, answer.error.code], [status, code], JSON.stringify(body));
    }
    await pollUntilDone(api, id);
    const finished = await extend({ finishWithinSeconds: 120 });
    assert.equal(finished.status, 409);
    assert.equal(((await finished.json()) as { error: { code: string } }).error.code, 'job_finished');
  });
});

describe('the bridge: GET asks the workflow, and the row answers when it cannot', () => {
  test('the workflow’s answer is preferred to the row’s; with no worker to answer, the row’s is given', async () => {
    const running = await submitJob(solo);
    const held = await submitJob(solo);
    const live = await waitingWhen(solo, held, (w) => w.reason === 'admission');
    // The row made to say something the workflow does not: GET still gives the workflow's word.
    const rowSays = { ...live, until: '2099-01-01T00:00:00.000Z' };
    await sql`update jobs set waiting = ${JSON.stringify(rowSays)}::jsonb where id = ${held}`.execute(
      ctx.database.db,
    );
    assert.deepEqual((await getJob(solo, held)).waiting, live);

    await worker.stop();
    const startedAt = Date.now();
    const fromRow: Job = await getJob(solo, held);
    assert.deepEqual(fromRow.waiting, rowSays);
    assert.ok(Date.now() - startedAt < 5000, 'a GET does not hang on a workflow nobody runs');
    assert.ok(running);
  });
});

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { resultKeyFor } from '../src/storage/job-object-keys.js';
import { findJob } from '../src/db/job-repository.js';
import { ObjectNotFoundError } from '../src/storage/object-store.js';
import { ensureRetentionSchedule, retentionScheduleId } from '../src/worker/schedules.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

let ctx: TestContext;
let api: ApiTarget;

before(async () => {
  ctx = await createTestContext({ RETENTION_SUCCEEDED_DAYS: '7', RETENTION_UNSUCCESSFUL_DAYS: '30' });
  await startWorker(ctx);
  api = await startApi(ctx);
});
after(() => ctx.cleanup());

/** Shared with identical requests: its result-cache entry goes with its details. */
const bodyFor = (key: string) => ({
  kind: 'image',
  prompt: `retention ${key}`,
  params: { size: '256x256' },
  cache: 'reuse',
});

async function finishedJob(key: string, status: 'succeeded' | 'failed', daysAgo: number): Promise<string> {
  const body = bodyFor(key);
  const job = await pollUntilDone(api, String((await submit(api, body, key)).body.id));
  assert.equal(job.status, 'succeeded');
  // Age the row (and, for the failed case, rewrite its outcome) as if it had finished long ago.
  await ctx.database.db
    .updateTable('jobs')
    .set({
      completed_at: sql<Date>`now() - make_interval(days => ${daysAgo})`,
      ...(status === 'failed'
        ? { status, failure_code: 'provider_unavailable', failure_message: 'down' }
        : {}),
    })
    .where('id', '=', job.id)
    .execute();
  return job.id;
}

test('the retention schedule leaves tombstones of expired jobs and keeps the rest', async () => {
  const oldSuccess = await finishedJob(`old-${randomUUID()}`, 'succeeded', 8);
  const newSuccess = await finishedJob(`new-${randomUUID()}`, 'succeeded', 1);
  const recentFailure = await finishedJob(`fail-${randomUUID()}`, 'failed', 10);
  const oldFailure = await finishedJob(`oldfail-${randomUUID()}`, 'failed', 31);

  await ensureRetentionSchedule(ctx.temporal, ctx.config);
  const schedule = ctx.temporal.schedule.getHandle(retentionScheduleId(ctx.config));
  await schedule.trigger();
  await waitFor(async () => Boolean((await findJob(ctx.database.db, oldFailure))?.purged_at));

  const purged = await getJob(api, oldSuccess);
  assert.ok(purged.purgedAt, 'the old success is a tombstone');
  assert.equal(purged.status, 'succeeded');
  await assert.rejects(ctx.store.get(resultKeyFor(oldSuccess)), ObjectNotFoundError);
  const content = await apiFetch(api, `/v1/generations/${oldSuccess}/content`);
  assert.equal(content.status, 410);
  assert.equal(((await content.json()) as { error: { code: string } }).error.code, 'result_expired');

  assert.equal((await getJob(api, newSuccess)).purgedAt, null);
  assert.equal((await apiFetch(api, `/v1/generations/${newSuccess}/content`)).status, 200);
  assert.equal((await getJob(api, recentFailure)).purgedAt, null, 'failures are kept longer');
  const oldFailureRow = await findJob(ctx.database.db, oldFailure);
  assert.equal(oldFailureRow?.failure_message, null, 'details are removed');
  const cacheEntries = await ctx.database.db
    .selectFrom('generation_results')
    .select('job_id')
    .where('job_id', 'in', [oldSuccess, newSuccess])
    .execute();
  assert.deepEqual(
    cacheEntries.map((entry) => entry.job_id),
    [newSuccess],
    "a tombstone's cache entry is gone, a kept job's stays",
  );
  assert.equal(oldFailureRow?.failure_code, 'provider_unavailable', 'the tombstone says how it ended');

  await schedule.delete();
});

test('a tombstone still holds its idempotency key: the same key returns it, nothing runs again', async () => {
  const key = `held-${randomUUID()}`;
  const id = await finishedJob(key, 'succeeded', 9);
  await ctx.database.db.updateTable('jobs').set({ purged_at: new Date() }).where('id', '=', id).execute();
  const again = await submit(api, bodyFor(key), key);
  assert.equal(again.status, 202);
  assert.equal(again.body.id, id);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.equal((await getJob(api, id)).attempts, 1);
});

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

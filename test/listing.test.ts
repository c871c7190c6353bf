import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import type { JobPage } from '../src/use-cases/list-generations.js';
import { transitionJob } from '../src/db/job-repository.js';
import { createUser, issueApiKey } from '../src/db/user-repository.js';
import { apiFetch, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

let ctx: TestContext;
let api: ApiTarget;
const created: string[] = [];

// No worker: the jobs stay queued unless a test moves them, which is all a listing needs.
before(async () => {
  ctx = await createTestContext();
  api = await startApi(ctx);
  for (let i = 0; i < 7; i++) created.push(await newJob());
});
after(() => ctx.cleanup());

async function newJob(): Promise<string> {
  const body = { kind: 'image', prompt: `list ${randomUUID()}`, params: { size: '256x256' } };
  return String((await submit(api, body, randomUUID())).body.id);
}

async function page(query: string): Promise<JobPage> {
  const response = await apiFetch(api, `/v1/generations?${query}`);
  assert.equal(response.status, 200);
  return (await response.json()) as JobPage;
}

test('pages walk the caller’s jobs newest first and end with a null cursor', async () => {
  const seen: string[] = [];
  let cursor: string | null = '';
  for (let pages = 0; cursor !== null; pages++) {
    assert.ok(pages < 5, 'pagination ends');
    const result: JobPage = await page(`limit=3${cursor ? `&cursor=${cursor}` : ''}`);
    seen.push(...result.data.map((job) => job.id));
    cursor = result.nextCursor;
  }
  assert.deepEqual(seen, [...created].reverse());
});

test('jobs created between two pages shift nothing: the next page goes on where the last ended', async () => {
  const first = await page('limit=3');
  await newJob();
  await newJob();
  const second = await page(`limit=3&cursor=${first.nextCursor}`);
  const newestFirst = [...created].reverse();
  assert.deepEqual(
    [...first.data, ...second.data].map((job) => job.id),
    newestFirst.slice(0, 6),
  );
});

test('status filters the listing', async () => {
  for (const id of created.slice(0, 2)) await transitionJob(ctx.database.db, id, 'canceled');
  const canceled = await page('status=canceled');
  assert.deepEqual(canceled.data.map((job) => job.id).sort(), created.slice(0, 2).sort());
  assert.equal(canceled.nextCursor, null);
});

test('kind filters the listing, and pages within it by the same cursor', async () => {
  const text = { kind: 'text', prompt: `list ${randomUUID()}` };
  const texts: string[] = [];
  for (let i = 0; i < 3; i++) texts.push(String((await submit(api, text, randomUUID())).body.id));
  const first = await page('kind=text&limit=2');
  const second = await page(`kind=text&limit=2&cursor=${first.nextCursor}`);
  assert.deepEqual(
    [...first.data, ...second.data].map((job) => job.id),
    [...texts].reverse(),
  );
  assert.equal(second.nextCursor, null);
  const images = await page('kind=image&limit=100');
  assert.ok(images.data.length > 0 && images.data.every((job) => job.kind === 'image'));
});

test('bad queries get 400 in the error shape, and a cursor of another user is refused', async () => {
  for (const query of [
    'limit=0',
    'limit=101',
    'limit=abc',
    'status=done',
    'kind=video',
    'other=1',
    'cursor=bm9wZQ',
  ]) {
    const response = await apiFetch(api, `/v1/generations?${query}`);
    assert.equal(response.status, 400, query);
  }
  const other = await createUser(ctx.database.db, `other-${randomUUID()}`);
  const otherApi = { url: api.url, apiKey: await issueApiKey(ctx.database.db, other.id) };
  const mine = await page('limit=1');
  const response = await apiFetch(otherApi, `/v1/generations?cursor=${mine.nextCursor}`);
  assert.equal(response.status, 400);
  assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'invalid_cursor');
});

test('a page is an index range scan, not an OFFSET', async () => {
  const plan = await ctx.database.db.transaction().execute(async (trx) => {
    // The table is tiny, so the planner would rightly scan it; forbid that to see the index is usable.
    await sql`set local enable_seqscan = off`.execute(trx);
    const { rows } = await sql<{
      'QUERY PLAN': string;
    }>`explain select * from jobs where user_id = ${ctx.userId}
      and (created_at, id) < (select c.created_at, c.id from jobs c where c.id = ${created[3]})
      order by created_at desc, id desc limit 21`.execute(trx);
    return rows.map((row) => row['QUERY PLAN']).join('\n');
  });
  assert.match(plan, /Index Scan using jobs_user_created_id/);
  assert.doesNotMatch(plan, /Sort/);
});

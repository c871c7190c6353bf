import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Job } from '../src/jobs/job.js';
import { balanceProblems, jobLedgerProblems } from './harness/fault-checks.js';
import { pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

/*
 * The fault scenario of fallback chains: the provider jobs are submitted for fails hard for 60 s while
 * 50 jobs run. Every job must succeed on the fallback within its deadline, the dead provider must see
 * only the calls that opened its breaker and the breaker's probes, and every switch must be an event.
 */

const OUTAGE_MS = 60_000;
const JOBS = 50;
const BATCH = 5;
const BATCH_EVERY_MS = 3000;
const THRESHOLD = 3;
const COOLDOWN_SECONDS = 10;
const AFTER_FAILED_CALLS = 2;
const FINISH_WITHIN_SECONDS = 45;

let stack: OpenAIStack;
let api: ApiTarget;

before(async () => {
  stack = await startOpenAIStack({
    FALLBACK_CHAINS: JSON.stringify({
      'openai:dall-e-2': [{ provider: 'local', model: 'kiln-sketch-1' }],
    }),
    FALLBACK_AFTER_FAILED_CALLS: String(AFTER_FAILED_CALLS),
    BREAKER_FAILURE_THRESHOLD: String(THRESHOLD),
    BREAKER_COOLDOWN_SECONDS: String(COOLDOWN_SECONDS),
    PROVIDER_BACKOFF_INITIAL_MS: '300',
    PROVIDER_BACKOFF_MAX_MS: '1000',
    LOCAL_PROVIDER_DELAY_MS: '500',
    // One user runs every job: its plan must not be what holds them back.
    PLANS: JSON.stringify({ free: { maxRunning: JOBS, weight: 1 } }),
  });
  ({ api } = stack);
});
after(() => stack?.stop());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function submitBatch(batch: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: BATCH }, async (_, i) => {
      const body = {
        kind: 'image',
        prompt: `outage ${batch}-${i}`,
        provider: 'openai',
        model: 'dall-e-2',
        params: { size: '256x256' },
        deadline: { finishWithinSeconds: FINISH_WITHIN_SECONDS },
      };
      const response = await submit(api, body, randomUUID());
      assert.equal(response.status, 202);
      return String(response.body.id);
    }),
  );
}

test('a provider dead for 60 s: every job served by its fallback in time, the dead one only probed', async () => {
  stack.provider.setBehaviour({ kind: 'server_error', status: 503 });
  const outageEndsAt = Date.now() + OUTAGE_MS;
  const ids: string[] = [];
  for (let batch = 0; batch < JOBS / BATCH; batch += 1) {
    ids.push(...(await submitBatch(batch)));
    await sleep(BATCH_EVERY_MS);
  }
  const jobs: Job[] = await Promise.all(ids.map((id) => pollUntilDone(api, id, OUTAGE_MS)));
  const deadCalls = stack.provider.requests.length;
  await sleep(Math.max(0, outageEndsAt - Date.now()));
  const probedAfter = stack.provider.requests.length - deadCalls;
  stack.provider.setBehaviour({ kind: 'ok' });

  assert.deepEqual(
    jobs.filter((job) => job.status !== 'succeeded').map((job) => `${job.id} ${job.status}`),
    [],
  );
  assert.deepEqual(
    jobs.filter((job) => job.servedBy.provider !== 'local').map((job) => job.id),
    [],
    'served by the fallback',
  );

  // The first batch runs into the outage before the breaker has seen THRESHOLD failures: each of its
  // jobs may call AFTER_FAILED_CALLS times. After that, only the breaker's probes, at most one per
  // cool-down (measured: 3 failures opened it, then 2 probes, 5 calls in all).
  const probes = Math.ceil(OUTAGE_MS / 1000 / COOLDOWN_SECONDS) + 1;
  const allowed = BATCH * AFTER_FAILED_CALLS + probes;
  console.log(
    `outage: ${deadCalls} calls to the dead provider (${probedAfter} after its jobs ended), ${allowed} allowed`,
  );
  assert.ok(deadCalls + probedAfter <= allowed, `${deadCalls + probedAfter} calls, allowed ${allowed}`);
  assert.ok(deadCalls >= THRESHOLD, 'the breaker opened on real failures');

  const events = await stack.ctx.database.db
    .selectFrom('job_events')
    .select(['job_id', 'data'])
    .where('type', '=', 'provider_switched')
    .where('job_id', 'in', ids)
    .execute();
  for (const job of jobs) {
    const own = events
      .filter((event) => event.job_id === job.id)
      .map((event) => (event.data as Job).servedBy);
    assert.deepEqual(own, [job.servedBy], `${job.id}: one switch event, the one its row says`);
  }
  const reasons = new Set(jobs.map((job) => job.servedBy.switched?.reason));
  assert.ok(
    reasons.has('circuit_open'),
    `jobs after the first few move on at the open circuit: ${[...reasons].join(', ')}`,
  );

  assert.deepEqual(await balanceProblems(stack.ctx.database.db), []);
  assert.deepEqual(await jobLedgerProblems(stack.ctx.database.db, jobs, stack.ctx.config.costs), []);
});

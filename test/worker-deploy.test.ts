import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import type { Config } from '../src/config/index.js';
import { promoteVersion } from '../src/worker/worker-deployment.js';
import { NEXT_RELEASE_TIMER_MS } from './harness/next-release-workflows.js';
import { getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/*
 * A deploy that keeps jobs in flight, under Worker Versioning: jobs start on build N, build N+1 (whose
 * runGeneration issues other commands) is deployed beside it and made current, N drains and is shut
 * down, and every job completes, each on the build it started on. That N+1 would have broken N's jobs
 * is shown too: their histories do not replay on it.
 */

const NEXT_RELEASE = fileURLToPath(new URL('./harness/next-release-workflows.ts', import.meta.url));
const TODAY = fileURLToPath(new URL('../src/workflows/index.ts', import.meta.url));

let ctx: TestContext;
let api: ApiTarget;
const deploymentName = `kiln-deploy-test-${randomUUID().slice(0, 8)}`;

function buildConfig(buildId: string): Config {
  const { temporal } = ctx.config;
  return { ...ctx.config, temporal: { ...temporal, deployment: { deploymentName, buildId } } };
}

const promote = (buildId: string) =>
  promoteVersion(ctx.temporal, ctx.config.temporal.namespace, { deploymentName, buildId });

before(async () => {
  // Long enough that build N's jobs are still running when N+1 becomes current.
  ctx = await createTestContext({ LOCAL_PROVIDER_DELAY_MS: '3000', LOCAL_PROVIDER_STEPS: '3' });
  api = await startApi(ctx);
});
after(() => ctx.cleanup());

async function submitJobs(label: string, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const body = { kind: 'image', prompt: `deploy ${label} ${i}`, params: { size: '256x256' } };
      const reply = await submit(api, body, randomUUID());
      assert.equal(reply.status, 202, JSON.stringify(reply.body));
      return String(reply.body.id);
    }),
  );
}

async function allRunning(ids: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await Promise.all(ids.map((id) => getJob(api, id)))).some((job) => job.status !== 'running')) {
    if (Date.now() > deadline) assert.fail('build N’s jobs did not all start');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The build that completed the job's workflow tasks, as Temporal records it. */
async function buildOf(temporal: Client, jobId: string): Promise<string | undefined> {
  const { raw } = await temporal.workflow.getHandle(jobId).describe();
  return raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId ?? undefined;
}

/** Whether the job's first command was the next release's timer, which today's code does not set. */
async function startedWithTimer(temporal: Client, jobId: string): Promise<boolean> {
  const events = (await temporal.workflow.getHandle(jobId).fetchHistory()).events ?? [];
  const firstTask = events.findIndex((event) => event.workflowTaskCompletedEventAttributes);
  const timer = events[firstTask + 1]?.timerStartedEventAttributes?.startToFireTimeout;
  return Number(timer?.seconds ?? -1) === 0 && Number(timer?.nanos ?? 0) === NEXT_RELEASE_TIMER_MS * 1e6;
}

test('jobs started on build N finish on N while N+1 takes new ones; N drains and goes', async () => {
  const buildN = await startWorker(ctx, { config: buildConfig('n') });
  await promote('n');
  const startedOnN = await submitJobs('on N', 3);
  await allRunning(startedOnN);

  await startWorker(ctx, { config: buildConfig('n1'), options: { workflowsPath: NEXT_RELEASE } });
  await promote('n1');
  const startedOnNext = await submitJobs('on N+1', 3);

  const ended = await Promise.all([...startedOnN, ...startedOnNext].map((id) => pollUntilDone(api, id)));
  assert.deepEqual(
    ended.map((job) => job.status),
    ended.map(() => 'succeeded'),
  );
  for (const id of startedOnN) {
    assert.equal(await buildOf(ctx.temporal, id), 'n', `${id} moved off the build it started on`);
    assert.equal(await startedWithTimer(ctx.temporal, id), false);
  }
  for (const id of startedOnNext) {
    assert.equal(await buildOf(ctx.temporal, id), 'n1');
    assert.equal(await startedWithTimer(ctx.temporal, id), true, `${id} did not run the next release’s code`);
  }

  // Drained: N's jobs are done, so N goes, and jobs go on without it.
  await buildN.stop();
  const [afterN] = await submitJobs('after N', 1);
  assert.equal((await pollUntilDone(api, afterN ?? '')).status, 'succeeded');

  // What pinning spared N's jobs: replayed on N+1's code, their histories are nondeterministic.
  const history = await ctx.temporal.workflow.getHandle(startedOnN[0] ?? '').fetchHistory();
  await Worker.runReplayHistory({ workflowsPath: TODAY }, history);
  await assert.rejects(
    Worker.runReplayHistory({ workflowsPath: NEXT_RELEASE }, history),
    (error: Error) => error.name === 'DeterminismViolationError',
  );
});

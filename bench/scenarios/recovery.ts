import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { findJob } from '../../src/db/job-repository.js';
import { startFakeReplicateServer } from '../../test/fakes/replicate-server.js';
import type { ApiTarget } from '../../test/harness/job-watcher.js';
import { spawnWorkerProcess, type WorkerProcess } from '../../test/harness/kiln-processes.js';
import type { TestContext } from '../../test/harness/test-context.js';
import { submitTimed, JobWatcher, allWithin } from '../lib/jobs.js';
import { workerProcessEnv } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { benchContext, spawnApiProcess } from '../lib/stack.js';

const HEARTBEAT_TIMEOUT_SECONDS = 5;
const POLL_INTERVAL_MS = 200;
const PREDICTION_MS = 12_000;

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The worker process running the job's provider call, from the activity's last worker identity (pid@host). */
async function workerRunningCall(ctx: TestContext, jobId: string, workers: WorkerProcess[]) {
  const { raw } = await ctx.temporal.workflow.getHandle(jobId).describe();
  const identity = raw.pendingActivities?.find(
    (a) => a.activityType?.name === 'callProvider',
  )?.lastWorkerIdentity;
  const pid = Number(identity?.split('@')[0]);
  return workers.find((worker) => worker.child.pid === pid);
}

/** SIGKILL of the worker inside a submit-then-poll provider call, until the call goes on elsewhere. */
export const recovery: Scenario = {
  name: 'recovery',
  title: 'recovery',
  conditions: () =>
    `two worker processes; a Replicate-fake job (prediction of ${PREDICTION_MS / 1000} s, polled every ` +
    `${POLL_INTERVAL_MS} ms); the worker running the call gets SIGKILL once the task id is stored and polled; ` +
    `figure = SIGKILL → first poll of that prediction from the other worker; heartbeat timeout ` +
    `${HEARTBEAT_TIMEOUT_SECONDS} s (target ${HEARTBEAT_TIMEOUT_SECONDS + 2} s); a fresh standby is started between runs`,
  targets: [
    {
      figure: 'resumed_after_ms',
      label: `≤ heartbeat timeout + 2 s (${(HEARTBEAT_TIMEOUT_SECONDS + 2) * 1000} ms)`,
      op: '<=',
      value: (HEARTBEAT_TIMEOUT_SECONDS + 2) * 1000,
    },
    { figure: 'duplicate_submits', label: '0 duplicate submits', op: '<=', value: 0 },
  ],
  async run(settings: RunSettings) {
    const replicate = await startFakeReplicateServer({ durationMs: PREDICTION_MS });
    const ctx = await benchContext({
      REPLICATE_API_TOKEN: replicate.apiToken,
      REPLICATE_BASE_URL: replicate.url,
      REPLICATE_POLL_INTERVAL_MS: String(POLL_INTERVAL_MS),
      DEFAULT_PROVIDER: 'replicate',
      PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: String(HEARTBEAT_TIMEOUT_SECONDS),
      PROVIDER_ATTEMPT_TIMEOUT_SECONDS: '120',
    });
    try {
      const workerEnv = workerProcessEnv();
      const workers = [spawnWorkerProcess(ctx, workerEnv), spawnWorkerProcess(ctx, workerEnv)];
      const [api] = await Promise.all([spawnApiProcess(ctx), ...workers.map((w) => w.ready)]);
      const user: ApiTarget = { url: api.url, apiKey: ctx.apiKey };
      const watcher = await JobWatcher.open(user);
      const results = await repeat(settings, async () => {
        const submitsBefore = replicate.submits();
        const body = {
          kind: 'image',
          provider: 'replicate',
          prompt: `recovery ${randomUUID()}`,
          params: { size: '256x256' },
        };
        const { id } = await submitTimed(user, body);
        const done = watcher.watch(id).done;
        await waitFor(
          async () => Boolean((await findJob(ctx.database.db, id))?.provider_task_id),
          30_000,
          'task id',
        );
        const pollsAtTask = replicate.polls();
        await waitFor(() => replicate.polls() > pollsAtTask + 2, 30_000, 'polls');
        const victim = await workerRunningCall(ctx, id, workers);
        if (!victim) throw new Error('no worker process holds the provider call');
        victim.child.kill('SIGKILL');
        const killedAt = performance.now();
        // A poll already on the wire when the worker died still lands: it is not the resumed call.
        await sleep(50);
        const pollsAfterKill = replicate.polls();
        await waitFor(() => replicate.polls() > pollsAfterKill, 60_000, 'resumed poll');
        const resumedAfterMs = performance.now() - killedAt;
        const job = await allWithin([done], 60_000, 'recovered job');
        workers.splice(workers.indexOf(victim), 1);
        const standby = spawnWorkerProcess(ctx, workerEnv);
        workers.push(standby);
        await standby.ready;
        return {
          resumed_after_ms: resumedAfterMs,
          duplicate_submits: replicate.submits() - submitsBefore - 1,
          succeeded: job[0]?.status === 'succeeded' ? 1 : 0,
        };
      });
      watcher.close();
      return results;
    } finally {
      await ctx.cleanup();
      await replicate.close();
    }
  },
};

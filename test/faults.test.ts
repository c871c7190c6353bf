import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { after, before, describe, test } from 'node:test';
import { startTemporalDevServer, type TemporalDevServer } from '../src/devstack/temporal-dev-server.js';
import { findJob } from '../src/db/job-repository.js';
import { startFakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import { startFakeReplicateServer } from './fakes/replicate-server.js';
import {
  listObjectKeys,
  printReports,
  reportFor,
  storageMatches,
  type ScenarioReport,
} from './harness/fault-checks.js';
import { freePort } from './harness/free-port.js';
import { startHoldingProxy, type HoldingProxy } from './harness/holding-proxy.js';
import { startTcpProxy, type TcpProxy } from './harness/tcp-proxy.js';
import {
  apiFetch,
  getJob,
  openStream,
  pollUntilDone,
  submit,
  type ApiTarget,
} from './harness/job-watcher.js';
import { spawnWorkerProcess, startApi, type WorkerProcess } from './harness/kiln-processes.js';
import { startMinio, type MinioServer } from './harness/minio.js';
import { startPostgresCluster, type PostgresCluster } from './harness/postgres.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const JOBS = 5;

describe('fault suite: every accepted job ends, once, whatever breaks', () => {
  let postgres: PostgresCluster;
  let temporal: TemporalDevServer;
  let temporalOptions: Parameters<typeof startTemporalDevServer>[0];
  let temporalDir: string;
  let minio: MinioServer;
  let s3Proxy: HoldingProxy;
  let replicate: Awaited<ReturnType<typeof startFakeReplicateServer>>;
  let openai: Awaited<ReturnType<typeof startFakeOpenAIImagesServer>>;
  let ctx: TestContext;
  let api: ApiTarget;
  let worker: WorkerProcess;
  const reports: ScenarioReport[] = [];
  const allIds: string[] = [];

  before(async () => {
    // Servers of its own, so that they can be restarted without disturbing other test files.
    postgres = await startPostgresCluster();
    temporalDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-temporal-'));
    temporalOptions = {
      port: await freePort(),
      httpPort: await freePort(),
      dbFile: path.join(temporalDir, 't.db'),
    };
    temporal = await startTemporalDevServer(temporalOptions);
    // Result writes pass through a proxy that can stall them, to catch a worker as it writes a result.
    minio = await startMinio();
    s3Proxy = await startHoldingProxy(
      minio.endpoint,
      (req) => req.method === 'PUT' && /\/results\//.test(req.url ?? ''),
    );
    replicate = await startFakeReplicateServer();
    openai = await startFakeOpenAIImagesServer();
    ctx = await createTestContext(
      {
        DEFAULT_PROVIDER: 'replicate',
        REPLICATE_API_TOKEN: replicate.apiToken,
        REPLICATE_BASE_URL: replicate.url,
        REPLICATE_POLL_INTERVAL_MS: '200',
        OPENAI_API_KEY: openai.apiKey,
        OPENAI_BASE_URL: openai.url,
        PROVIDER_BACKOFF_INITIAL_MS: '200',
        PROVIDER_BACKOFF_MAX_MS: '2000',
        PROVIDER_MAX_CALLS: '20',
        BREAKER_FAILURE_THRESHOLD: '3',
        BREAKER_COOLDOWN_SECONDS: '3',
      },
      {
        KILN_TEST_PG_BASE_URL: postgres.urlFor(''),
        KILN_TEST_TEMPORAL_ADDRESS: temporal.address,
        KILN_TEST_S3_ENDPOINT: s3Proxy.url,
        KILN_TEST_S3_REGION: minio.region,
        KILN_TEST_S3_ACCESS_KEY_ID: minio.accessKeyId,
        KILN_TEST_S3_SECRET_ACCESS_KEY: minio.secretAccessKey,
      },
    );
    api = await startApi(ctx);
    worker = spawnWorkerProcess(ctx);
    await worker.ready;
  });

  after(async () => {
    printReports(reports);
    await ctx.cleanup();
    await Promise.allSettled([replicate.close(), openai.close(), temporal.stop(), postgres.stop()]);
    await Promise.allSettled([s3Proxy.close(), minio.stop()]);
    await rm(temporalDir, { recursive: true, force: true });
  });

  async function submitJobs(
    label: string,
    extra: object = {},
  ): Promise<{ ids: string[]; prompts: string[] }> {
    const prompts = Array.from({ length: JOBS }, (_, i) => `${label} ${i} ${randomUUID()}`);
    const ids = await Promise.all(
      prompts.map(async (prompt) => {
        const body = { kind: 'image', prompt, params: { size: '256x256' }, ...extra };
        const accepted = await submit(api, body, randomUUID());
        assert.equal(accepted.status, 202);
        return String(accepted.body.id);
      }),
    );
    allIds.push(...ids);
    return { ids, prompts };
  }

  /** Waits for every job, then checks and records the scenario; `extraCalls` counts paid duplicates. */
  async function finish(scenario: string, ids: string[], extraCalls: () => number): Promise<void> {
    await Promise.all(ids.map((id) => pollUntilDone(api, id, 120_000).catch(() => undefined)));
    const { report, ledgerProblems, jobs } = await reportFor(ctx, scenario, ids, extraCalls());
    reports.push(report);
    const unsucceeded = jobs
      .filter((job) => job.status !== 'succeeded')
      .map(
        (job) =>
          `${job.id} ${job.status}${job.failure ? ` (${job.failure.code}: ${job.failure.message})` : ''}`,
      );
    assert.deepEqual(
      {
        succeeded: report.succeeded,
        lost: report.lost,
        duplicateCalls: report.duplicateCalls,
        ledgerErrors: report.ledgerErrors,
      },
      { succeeded: JOBS, lost: 0, duplicateCalls: 0, ledgerErrors: 0 },
      `${scenario}: ${[...unsucceeded, ...ledgerProblems].join('; ')}`,
    );
  }

  /** Submits beyond one per prompt: each would be a second paid generation. */
  function duplicateSubmits(prompts: string[]): () => number {
    return () =>
      prompts.reduce((sum, prompt) => {
        const submits = replicate.predictions().filter((p) => p.input.prompt === prompt).length;
        return sum + Math.max(0, submits - 1);
      }, 0);
  }

  async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  const allRunning = (ids: string[]) => async () =>
    (await Promise.all(ids.map((id) => findJob(ctx.database.db, id)))).every((row) => row?.provider_task_id);

  const rowsAre = (ids: string[], status: string) => async () =>
    (await Promise.all(ids.map((id) => findJob(ctx.database.db, id)))).every((row) => row?.status === status);

  async function replaceWorker(): Promise<void> {
    worker.child.kill('SIGKILL');
    worker = spawnWorkerProcess(ctx);
    await worker.ready;
  }

  /** Replaces the worker with one that reaches Temporal only through a link the test can stall. */
  async function workerBehindLink(): Promise<TcpProxy> {
    await worker.stop();
    const link = await startTcpProxy(temporal.address);
    worker = spawnWorkerProcess(ctx, { TEMPORAL_ADDRESS: link.address });
    await worker.ready;
    return link;
  }

  test('SIGKILL of the worker while provider tasks run', async () => {
    replicate.setDurationMs(4000);
    const { ids, prompts } = await submitJobs('kill');
    await waitUntil(allRunning(ids));
    await replaceWorker();
    await finish('worker SIGKILL mid-call', ids, duplicateSubmits(prompts));
  });

  test('SIGKILL of the worker as it writes the result', async () => {
    replicate.setDurationMs(500);
    s3Proxy.hold();
    const { ids, prompts } = await submitJobs('storing');
    // The output's write is a job's only PUT: every job is inside it.
    await waitUntil(() => Promise.resolve(s3Proxy.held() === JOBS));
    await replaceWorker();
    s3Proxy.release();
    await finish('worker SIGKILL writing the result', ids, duplicateSubmits(prompts));
  });

  /** Waits until every job's output is at its result key. */
  async function allStored(ids: string[]): Promise<void> {
    await waitUntil(async () => {
      const keys = new Set(await listObjectKeys(ctx));
      return ids.every((id) => keys.has(`results/${id}`));
    });
  }

  /** A worker whose PostgreSQL connections pass through a link the test can freeze. */
  async function workerBehindPostgresLink(): Promise<TcpProxy> {
    await worker.stop();
    const url = new URL(ctx.env.DATABASE_URL!);
    const link = await startTcpProxy(url.host);
    url.host = link.address;
    worker = spawnWorkerProcess(ctx, { DATABASE_URL: url.toString() });
    await worker.ready;
    return link;
  }

  /**
   * With every job's output write held, kills the worker once the outputs are stored but before
   * `storing` reaches PostgreSQL: the worker's link to it is frozen in between, so the statement
   * waits in the link and dies with the worker (a paused server would run it on resuming).
   */
  async function killWorkerBeforeSucceeded(ids: string[], link: TcpProxy): Promise<void> {
    await waitUntil(() => Promise.resolve(s3Proxy.held() === JOBS));
    link.freeze();
    s3Proxy.release();
    await allStored(ids);
    worker.child.kill('SIGKILL');
    await link.close();
  }

  test('SIGKILL of the worker inside a job-table write', async () => {
    replicate.setDurationMs(500);
    const link = await workerBehindPostgresLink();
    s3Proxy.hold();
    const { ids, prompts } = await submitJobs('job table');
    await killWorkerBeforeSucceeded(ids, link);
    worker = spawnWorkerProcess(ctx);
    await worker.ready;
    await finish('worker SIGKILL in the storing write', ids, duplicateSubmits(prompts));
  });

  /** Sessions of the database waiting for a row lock: the job writes a test's transaction holds up. */
  async function writesWaitingOnLocks(): Promise<number> {
    const { rows } = await sql<{ waiting: number }>`
      select count(*)::int as waiting from pg_stat_activity
      where wait_event_type = 'Lock' and datname = current_database()`.execute(ctx.database.db);
    return rows[0]?.waiting ?? 0;
  }

  test('SIGKILL of the worker after succeeded committed, before its workflow task completed', async () => {
    replicate.setDurationMs(500);
    const link = await workerBehindLink();
    s3Proxy.hold();
    const { ids, prompts } = await submitJobs('after succeeded');
    // Each provider call's completion is held in the frozen link, with its job `storing`.
    await waitUntil(() => Promise.resolve(s3Proxy.held() === JOBS));
    link.freeze();
    s3Proxy.release();
    await waitUntil(rowsAre(ids, 'storing'));
    // The `succeeded` writes then wait on the rows' locks, their workflow tasks begun.
    let unlock = () => {};
    const locked = ctx.database.db.transaction().execute(async (trx) => {
      await trx.selectFrom('jobs').select('id').where('id', 'in', ids).forUpdate().execute();
      link.thaw();
      await new Promise<void>((resolve) => (unlock = resolve));
    });
    try {
      await waitUntil(async () => (await writesWaitingOnLocks()) === JOBS);
      // The worker goes on writing to Postgres, but can no longer tell Temporal a task is done.
      link.freeze();
    } finally {
      unlock();
      await locked;
    }
    await waitUntil(rowsAre(ids, 'succeeded'));
    // The next worker replays each task: the writes up to `succeeded` run again on a succeeded row.
    await replaceWorker();
    await link.close();
    await finish('worker SIGKILL after succeeded', ids, duplicateSubmits(prompts));
  });

  test('a paid call whose completion never reached Temporal is not paid again', async () => {
    const link = await workerBehindLink();
    s3Proxy.hold();
    const before = openai.requests.length;
    const { ids } = await submitJobs('kept', { provider: 'openai', model: 'dall-e-2' });
    // Every call has been answered (and paid); its output is on its way to the result key.
    await waitUntil(() => Promise.resolve(s3Proxy.held() === JOBS));
    link.freeze();
    s3Proxy.release();
    await allStored(ids);
    await replaceWorker();
    await link.close();
    await finish('completion lost after the output was kept', ids, () =>
      Math.max(0, openai.requests.length - before - JOBS),
    );
  });

  test('a store slower than the heartbeat timeout: one paid call per job, nothing left over', async () => {
    s3Proxy.hold();
    const before = openai.requests.length;
    const { ids } = await submitJobs('slow store', { provider: 'openai', model: 'dall-e-2' });
    await waitUntil(() => Promise.resolve(s3Proxy.held() === JOBS));
    // Held past the 3 s heartbeat timeout: an attempt that stopped heartbeating would be given up on.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    s3Proxy.release();
    await finish('slow store', ids, () => Math.max(0, openai.requests.length - before - JOBS));
    const { jobs } = await reportFor(ctx, 'slow store', ids, 0);
    const keys = await listObjectKeys(ctx);
    assert.deepEqual(
      keys.filter((key) => ids.some((id) => key.endsWith(id))).sort(),
      jobs.map((job) => `results/${job.id}`).sort(),
      'one result per job, nothing else',
    );
  });

  test('a job canceled as its output is being written keeps no output', async () => {
    s3Proxy.hold();
    const { ids } = await submitJobs('cancel while writing', { provider: 'openai', model: 'dall-e-2' });
    await waitUntil(() => Promise.resolve(s3Proxy.held() === JOBS));
    await Promise.all(ids.map((id) => apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' })));
    s3Proxy.release();
    const jobs = await Promise.all(ids.map((id) => pollUntilDone(api, id, 120_000)));
    assert.deepEqual(new Set(jobs.map((job) => job.status)), new Set(['canceled']));
    // Waits for every workflow to close: the outputs go after the row says canceled.
    const { report } = await reportFor(ctx, 'canceled while writing', ids, 0);
    reports.push(report);
    assert.equal(report.lost, 0);
    const keys = await listObjectKeys(ctx);
    assert.deepEqual(
      ids.filter((id) => keys.includes(`results/${id}`)),
      [],
      'outputs of canceled jobs',
    );
  });

  test('a job whose deadline passed while its worker was lost after storing keeps no result', async () => {
    replicate.setDurationMs(500);
    const link = await workerBehindPostgresLink();
    s3Proxy.hold();
    const submittedAt = Date.now();
    const { ids } = await submitJobs('deadline storing', { deadline: { finishWithinSeconds: 4 } });
    await killWorkerBeforeSucceeded(ids, link);
    // The next worker replays each job with its deadline already passed: the job fails, after storing.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, submittedAt + 5000 - Date.now())));
    worker = spawnWorkerProcess(ctx);
    await worker.ready;
    const jobs = await Promise.all(ids.map((id) => pollUntilDone(api, id, 120_000)));
    assert.deepEqual(new Set(jobs.map((job) => job.failure?.code)), new Set(['deadline_exceeded']));
    // Waits for every workflow to close: the results their lost workers stored must be gone by then.
    const { report } = await reportFor(ctx, 'deadline after storing', ids, 0);
    reports.push(report);
    assert.equal(report.lost, 0);
    const keys = await listObjectKeys(ctx);
    assert.deepEqual(
      ids.filter((id) => keys.includes(`results/${id}`)),
      [],
      'stored outputs of jobs that failed',
    );
  });

  test('no worker at all when jobs are submitted', async () => {
    replicate.setDurationMs(500);
    await worker.stop();
    const { ids, prompts } = await submitJobs('no worker');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.ok((await Promise.all(ids.map((id) => getJob(api, id)))).every((job) => job.status === 'queued'));
    worker = spawnWorkerProcess(ctx);
    await worker.ready;
    await finish('workers down at submit', ids, duplicateSubmits(prompts));
  });

  /** Stops Temporal once every job's prediction runs, and starts it again on its SQLite file. */
  async function temporalOutage(scenario: string, predictionMs: number, downMs: number): Promise<void> {
    replicate.setDurationMs(predictionMs);
    const { ids, prompts } = await submitJobs(scenario);
    await waitUntil(allRunning(ids));
    await temporal.stop();
    await new Promise((resolve) => setTimeout(resolve, downMs));
    temporal = await startTemporalDevServer(temporalOptions);
    await finish(scenario, ids, duplicateSubmits(prompts));
  }

  test('Temporal server restart mid-run (persistent SQLite)', async () => {
    await temporalOutage('Temporal restart', 4000, 1000);
  });

  test('Temporal server down past the heartbeat timeout while provider tasks run', async () => {
    // Down past the 3 s heartbeat timeout, and the predictions outlast it: the server, back, gives up on
    // their attempts, and the next ones resume the predictions the first still poll.
    await temporalOutage('Temporal down past heartbeat timeout', 10_000, 5000);
  });

  /**
   * Ten clients submitting back to back until stopped; the ids of what was accepted. Refusals while a
   * dependency is down are expected, and must be 503s.
   */
  function submitBackToBack(label: string): { stop(): Promise<{ ids: string[]; refusals: number[] }> } {
    let running = true;
    const ids: string[] = [];
    const refusals: number[] = [];
    const clients = Array.from({ length: 10 }, async (_, client) => {
      for (let i = 0; running; i += 1) {
        const body = {
          kind: 'image',
          prompt: `${label} ${client}-${i} ${randomUUID()}`,
          params: { size: '256x256' },
        };
        const accepted = await submit(api, body, randomUUID()).catch(() => undefined);
        if (accepted?.status === 202) ids.push(String(accepted.body.id));
        else refusals.push(accepted?.status ?? 0);
        if (accepted?.status !== 202) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
    return {
      stop: async () => {
        running = false;
        await Promise.all(clients);
        allIds.push(...ids);
        return { ids, refusals };
      },
    };
  }

  /** Every 202 ends as it should, with jobs in flight and submits arriving while Postgres goes away. */
  async function postgresFault(scenario: string, label: string, fault: () => Promise<void>): Promise<void> {
    replicate.setDurationMs(4000);
    const { ids, prompts } = await submitJobs(label);
    await waitUntil(allRunning(ids));
    const load = submitBackToBack(`${label} load`);
    await fault();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const { ids: loadIds, refusals } = await load.stop();
    assert.deepEqual(
      refusals.filter((status) => status !== 503),
      [],
      'a submission refused while Postgres was away was not a 503',
    );
    // The same worker process, alive: it must ride out the restart, not be replaced after it.
    assert.equal(worker.child.exitCode, null, 'the worker exited');
    assert.equal(worker.child.signalCode, null, 'the worker was killed');
    await finish(scenario, ids, duplicateSubmits(prompts));
    await Promise.all(loadIds.map((id) => pollUntilDone(api, id, 120_000).catch(() => undefined)));
    const { report } = await reportFor(ctx, `${scenario}: load`, loadIds, 0);
    assert.equal(report.lost, 0, `${scenario}: a job accepted during the fault was lost`);
  }

  test('PostgreSQL fast restart mid-run (busy sessions end with 57P01)', async () => {
    await postgresFault('PostgreSQL fast restart', 'pg fast', () => postgres.restart('fast'));
  });

  test('PostgreSQL down for 5 s mid-run', async () => {
    await postgresFault('PostgreSQL down 5 s', 'pg down', async () => {
      await postgres.shutdown('fast');
      await new Promise((resolve) => setTimeout(resolve, 5000));
      await postgres.start();
    });
  });

  test('a provider that fails everything for a while', async () => {
    openai.setBehaviour({ kind: 'server_error', status: 502 });
    const { ids } = await submitJobs('outage', { provider: 'openai', model: 'dall-e-2' });
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const recoveredAt = openai.requests.length;
    openai.setBehaviour({ kind: 'ok' });
    // After recovery every call succeeds; more than one per job would be paid twice.
    await finish('provider outage 10 s', ids, () => Math.max(0, openai.requests.length - recoveredAt - JOBS));
  });

  test('a storm of 429s', async () => {
    const storm = 3 * JOBS;
    openai.queueBehaviour({ kind: 'rate_limited', retryAfterSeconds: 1 }, storm);
    const before = openai.requests.length;
    const { ids } = await submitJobs('429', { provider: 'openai', model: 'dall-e-2' });
    // Every call past the 429s is a successful generation; more than one per job would be paid twice.
    await finish('429 storm', ids, () => Math.max(0, openai.requests.length - before - storm - JOBS));
  });

  test('a client that disconnects mid-job and comes back sees it through', async () => {
    replicate.setDurationMs(2000);
    const { ids, prompts } = await submitJobs('reconnect');
    const first = await openStream(api);
    for (const id of ids) first.socket.send(JSON.stringify({ type: 'subscribe', id }));
    await waitUntil(() => Promise.resolve(first.messages.length >= JOBS));
    first.socket.terminate();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const second = await openStream(api);
    for (const id of ids) second.socket.send(JSON.stringify({ type: 'subscribe', id }));
    await waitUntil(async () =>
      Promise.resolve(
        ids.every((id) =>
          second.messages.some((m) => m.type === 'job' && m.job.id === id && m.job.status === 'succeeded'),
        ),
      ),
    );
    second.socket.close();
    await finish('client reconnects', ids, duplicateSubmits(prompts));
  });

  test('storage holds one result per succeeded job and nothing else', async () => {
    const jobs = await Promise.all(allIds.map((id) => getJob(api, id)));
    assert.ok(await storageMatches(ctx, jobs));
  });
});

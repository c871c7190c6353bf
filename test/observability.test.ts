import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { countFinishedJobs } from '../src/db/fleet-stats-repository.js';
import type { Job } from '../src/jobs/job.js';
import {
  startFakeOpenAIImagesServer,
  type FakeImagesBehaviour,
  type FakeOpenAIImagesServer,
} from './fakes/openai-images-server.js';
import { assertErrorShape } from './harness/error-shape.js';
import { apiFetch, openStream, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { spawnKilnProcess, type KilnProcess, type LogLine } from './harness/process-output.js';
import { scrape, valueOf, type Scrape } from './harness/prometheus-text.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/** In every prompt: it must never show up in any process's output. */
const SECRET_PROMPT = `observability-secret-${randomUUID()}`;
const OPENAI = { provider: 'openai', model: 'dall-e-2' };
/** A small window in jobs, not in time: the rate moves only with the jobs this file finishes. */
const FAILURE_RATE = { threshold: 0.5, minJobs: 2, windowSeconds: 3600 };
/** How long a condition may take to hold before the test gives up: a deadline, not a measurement. */
const SETTLE_MS = 60_000;

/** Retries `check` until it stops throwing; past the deadline its last error fails the test. */
async function eventually<T>(check: () => T | Promise<T>): Promise<T> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function delta(before: Scrape, after: Scrape, name: string, labels: Record<string, string> = {}): number {
  return valueOf(after, name, labels) - valueOf(before, name, labels);
}

let provider: FakeOpenAIImagesServer;
let ctx: TestContext;
let worker: KilnProcess;
let apiProcess: KilnProcess;
let api: ApiTarget;
let workerUrl: string;
const finishedJobs: Job[] = [];

before(async () => {
  provider = await startFakeOpenAIImagesServer();
  ctx = await createTestContext({
    OPENAI_API_KEY: provider.apiKey,
    OPENAI_BASE_URL: provider.url,
    DEFAULT_PROVIDER: 'openai',
    PROVIDER_BACKOFF_INITIAL_MS: '100',
    PROVIDER_BACKOFF_MAX_MS: '400',
    FAILURE_RATE_THRESHOLD: String(FAILURE_RATE.threshold),
    FAILURE_RATE_MIN_JOBS: String(FAILURE_RATE.minJobs),
    FAILURE_RATE_WINDOW_SECONDS: String(FAILURE_RATE.windowSeconds),
    FAILURE_RATE_CHECK_SECONDS: '0.2',
  });
  worker = spawnKilnProcess(ctx, 'worker');
  apiProcess = spawnKilnProcess(ctx, 'api');
  const [apiUrl, httpUrl] = await Promise.all([apiProcess.url, worker.url]);
  api = { url: apiUrl, apiKey: ctx.apiKey };
  workerUrl = httpUrl;
});
after(async () => {
  await ctx.cleanup();
  await provider.close();
});

/** Runs one job to its end through the API; the fake gives `answers` first, then images. */
async function runJob(answers: FakeImagesBehaviour[] = []): Promise<Job> {
  for (const answer of answers) provider.queueBehaviour(answer);
  const body = { kind: 'image', prompt: `${SECRET_PROMPT} ${finishedJobs.length}`, ...OPENAI };
  const accepted = await submit(api, { ...body, params: { size: '256x256' } }, randomUUID());
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  const job = await pollUntilDone(api, String(accepted.body.id));
  finishedJobs.push(job);
  return job;
}

const failing: FakeImagesBehaviour = { kind: 'content_policy' };

describe('metrics', () => {
  test('job counters and histograms move for real jobs, succeeded and failed', async () => {
    const before = { api: await scrape(api.url), worker: await scrape(workerUrl) };
    assert.equal((await runJob()).status, 'succeeded');
    assert.equal((await runJob([failing])).status, 'failed');
    // A 429, then a 500 (which the shared breaker counts), then an image: one job, three calls.
    const retried = await runJob([{ kind: 'rate_limited', retryAfterSeconds: 1 }, { kind: 'server_error' }]);
    assert.equal(retried.status, 'succeeded');
    assert.equal(retried.attempts, 3);

    const apiAfter = await scrape(api.url);
    assert.equal(delta(before.api, apiAfter, 'kiln_jobs_submitted_total', OPENAI), 3);
    // Counted right after the job-table write the API already shows: read until the worker caught up.
    const workerAfter = await eventually(async () => {
      const now = await scrape(workerUrl);
      assert.equal(delta(before.worker, now, 'kiln_job_duration_seconds_count', OPENAI), 3);
      return now;
    });
    const moved = (name: string, labels: Record<string, string> = {}) =>
      delta(before.worker, workerAfter, name, { ...OPENAI, ...labels });
    assert.equal(moved('kiln_jobs_started_total'), 3);
    assert.equal(moved('kiln_jobs_succeeded_total'), 2);
    assert.equal(moved('kiln_jobs_failed_total', { code: 'content_policy' }), 1);
    assert.equal(moved('kiln_job_duration_seconds_count', { status: 'succeeded' }), 2);
    assert.equal(moved('kiln_job_duration_seconds_count', { status: 'failed' }), 1);
    assert.equal(moved('kiln_provider_call_duration_seconds_count', { outcome: 'ok' }), 2);
    assert.equal(moved('kiln_provider_call_duration_seconds_count', { outcome: 'content_policy' }), 1);
    assert.equal(moved('kiln_provider_call_duration_seconds_count', { outcome: 'rate_limited' }), 1);
    assert.equal(moved('kiln_provider_call_duration_seconds_count', { outcome: 'provider_unavailable' }), 1);
    assert.equal(moved('kiln_provider_call_retries_total'), 2);
    assert.equal(moved('kiln_provider_rate_limited_total'), 1);
    // A histogram's +Inf bucket is its count, and a job lasts at least as long as its calls.
    const inf = { ...OPENAI, le: '+Inf' };
    assert.equal(
      valueOf(workerAfter, 'kiln_provider_call_duration_seconds_bucket', inf),
      valueOf(workerAfter, 'kiln_provider_call_duration_seconds_count', OPENAI),
    );
    assert.ok(
      moved('kiln_job_duration_seconds_sum') >= moved('kiln_provider_call_duration_seconds_sum'),
      'job durations cover their provider calls',
    );
  });

  test('fleet gauges come from Postgres on API and worker alike', async () => {
    for (const metrics of [await scrape(api.url), await scrape(workerUrl)]) {
      const unfinished = metrics.samples.filter((s) => s.name === 'kiln_jobs_unfinished');
      assert.deepEqual(unfinished.map((s) => s.labels.status).sort(), ['queued', 'running', 'storing']);
      assert.equal(valueOf(metrics, 'kiln_jobs_unfinished'), 0);
      // The 500 above put a row in provider_circuits; one failure is below the threshold.
      assert.equal(
        valueOf(metrics, 'kiln_provider_circuit_state', { provider: 'openai', state: 'closed' }),
        1,
      );
      assert.equal(valueOf(metrics, 'kiln_provider_circuit_state', { provider: 'openai', state: 'open' }), 0);
      // Every job has ended: nothing is reserved, and the users hold what the table says they do.
      const { sum } = await ctx.database.db
        .selectFrom('users')
        .select((eb) => eb.fn.sum<string>('credits').as('sum'))
        .executeTakeFirstOrThrow();
      assert.equal(valueOf(metrics, 'kiln_credits', { held: 'balance' }), Number(sum));
      assert.equal(valueOf(metrics, 'kiln_credits', { held: 'reserved' }), 0);
      assert.ok(valueOf(metrics, 'process_cpu_user_seconds_total') > 0, 'Node process metrics');
    }
  });

  test("the worker's one endpoint carries the Temporal SDK's own metrics, each family once", async (t) => {
    const workerMetrics = await scrape(workerUrl);
    const families = new Set(workerMetrics.families);
    const temporalFamilies = [...families].filter((f) => f.startsWith('temporal_'));
    t.diagnostic(`worker scrape: ${families.size} families, ${temporalFamilies.length} from Temporal`);
    for (const family of [
      'temporal_worker_task_slots_available',
      'temporal_activity_execution_latency',
      'temporal_workflow_completed',
      'temporal_request',
    ]) {
      assert.ok(families.has(family), `${family} in ${temporalFamilies.join(' ')}`);
    }
    assert.equal(families.size, workerMetrics.families.length, 'no family declared twice');
    const apiMetrics = await scrape(api.url);
    assert.ok(!apiMetrics.families.some((f) => f.startsWith('temporal_')), 'the API runs no Temporal worker');
  });
});

/** The log lines of both processes that say the failure-rate signal changed. */
function signalLines(message: string): LogLine[] {
  return [...worker.output.lines(), ...apiProcess.output.lines()].filter((line) => line.msg === message);
}

async function signalEverywhere(firing: 0 | 1): Promise<void> {
  await eventually(async () => {
    for (const url of [api.url, workerUrl]) {
      assert.equal(valueOf(await scrape(url), 'kiln_job_failure_rate_high'), firing, url);
    }
  });
}

describe('a metrics token', () => {
  const token = `metrics-${randomUUID()}`;
  let guarded: KilnProcess[] = [];
  before(() => {
    guarded = [
      spawnKilnProcess(ctx, 'api', { METRICS_TOKEN: token }),
      spawnKilnProcess(ctx, 'worker', { METRICS_TOKEN: token, WORKER_HTTP_PORT: '0' }),
    ];
  });
  after(() => Promise.all(guarded.map((process) => process.stop())));

  test('closes /metrics on the API and the worker to any scrape without it, /healthz stays open', async () => {
    for (const url of await Promise.all(guarded.map((process) => process.url))) {
      for (const authorization of [undefined, 'Bearer wrong-token-of-some-length', `Basic ${token}`]) {
        const refused = await fetch(`${url}/metrics`, { headers: authorization ? { authorization } : {} });
        assert.equal(refused.status, 401, `${url} with ${authorization ?? 'nothing'}`);
        assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
        assert.equal(assertErrorShape(await refused.json()).code, 'unauthorized');
      }
      const scraped = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(scraped.status, 200);
      assert.match(await scraped.text(), /^# HELP kiln_/m);
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
    }
  });

  test("is in the API's OpenAPI document: /metrics asks for it, and may answer 401", async () => {
    const document = (await (await fetch(`${await guarded[0]!.url}/openapi.json`)).json()) as {
      paths: Record<string, { get: { security: unknown; responses: Record<string, unknown> } }>;
      components: { securitySchemes: Record<string, unknown> };
    };
    const metrics = document.paths['/metrics']!.get;
    assert.deepEqual(metrics.security, [{ metricsToken: [] }]);
    assert.ok(metrics.responses['401']);
    assert.ok(document.components.securitySchemes.metricsToken);
  });
});

describe('failure-rate signal', () => {
  test('flips on when failures pass the threshold, logs once, and flips off again', async () => {
    await signalEverywhere(0);
    const { finished, failed } = await countFinishedJobs(ctx.database.db, FAILURE_RATE.windowSeconds);
    // Just enough failing jobs to pass the threshold, then just enough good ones to fall back under it.
    let toFail = 0;
    while ((failed + toFail) / (finished + toFail) <= FAILURE_RATE.threshold) toFail += 1;
    let toSucceed = 0;
    while ((failed + toFail) / (finished + toFail + toSucceed) > FAILURE_RATE.threshold) toSucceed += 1;
    assert.ok(toFail > 0 && toSucceed > 0);

    for (let i = 0; i < toFail; i++) assert.equal((await runJob([failing])).status, 'failed');
    await signalEverywhere(1);
    const rate = valueOf(await scrape(workerUrl), 'kiln_job_failure_rate');
    assert.equal(rate, (failed + toFail) / (finished + toFail));
    const warned = await eventually(() => {
      const lines = signalLines('job failure rate above threshold');
      assert.equal(lines.length, 1, 'one process of the fleet announces it');
      return lines[0]!;
    });
    assert.equal(warned.level, 40);

    for (let i = 0; i < toSucceed; i++) assert.equal((await runJob()).status, 'succeeded');
    await signalEverywhere(0);
    const cleared = await eventually(() => {
      const lines = signalLines('job failure rate back under threshold');
      assert.equal(lines.length, 1);
      return lines[0]!;
    });
    assert.ok(Number(cleared.time) >= Number(warned.time));
    assert.equal(signalLines('job failure rate above threshold').length, 1, 'announced once, not per check');
  });
});

describe('logs', () => {
  test('every line about a job names its job, workflow, run and attempt; no prompt anywhere', () => {
    assert.ok(finishedJobs.length >= 3);
    for (const { id } of finishedJobs) {
      const workerLines = worker.output.lines().filter((line) => JSON.stringify(line).includes(id));
      const messages = new Set(workerLines.map((line) => line.msg));
      assert.ok(messages.has('provider call started') && messages.has('job ended'), [...messages].join(', '));
      for (const line of workerLines) {
        assert.equal(line.jobId, id, JSON.stringify(line));
        assert.equal(line.workflowId, id, JSON.stringify(line));
        assert.equal(typeof line.runId, 'string', JSON.stringify(line));
        assert.equal(typeof line.attempt, 'number', JSON.stringify(line));
      }
      const submitted = apiProcess.output.lines().filter((line) => line.jobId === id);
      assert.deepEqual(
        submitted.map((line) => line.msg),
        ['job submitted'],
      );
      assert.equal(submitted[0]!.workflowId, id);
      assert.equal(submitted[0]!.attempt, 0);
      const runIds = new Set(workerLines.map((line) => line.runId));
      assert.deepEqual([...runIds], [submitted[0]!.runId], 'the API and the worker name the same run');
    }
    for (const process of [worker, apiProcess]) {
      assert.ok(!process.output.text().includes(SECRET_PROMPT), 'no prompt text in any output');
      const notJson = process.output.stdoutLines().filter((line) => !line.startsWith('{'));
      assert.deepEqual(notJson, [], 'every line is JSON');
    }
    assert.ok(
      worker.output.lines().some((line) => line.component === 'temporal'),
      "Temporal's own lines go through pino",
    );
  });
});

/** Refuses new connections to this context's database and ends the open ones: Postgres gone, for it. */
async function setDatabaseReachable(reachable: boolean): Promise<void> {
  const url = new URL(ctx.env.DATABASE_URL!);
  const name = url.pathname.slice(1);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(name)} WITH ALLOW_CONNECTIONS ${reachable}`);
    if (!reachable) {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
    }
  } finally {
    await admin.end();
  }
}

async function healthzAnswers(status: number): Promise<unknown> {
  return eventually(async () => {
    const response = await fetch(`${workerUrl}/healthz`);
    assert.equal(response.status, status);
    return (await response.json()) as object;
  });
}

describe('sockets and health', () => {
  test('/healthz answers 503 while Postgres is unreachable, 200 once it is back', async () => {
    await healthzAnswers(200);
    await setDatabaseReachable(false);
    try {
      assert.equal(assertErrorShape(await healthzAnswers(503)).message, 'database unreachable');
    } finally {
      await setDatabaseReachable(true);
    }
    await healthzAnswers(200);
  });

  test('open sockets are counted; /healthz answers 200, then 503 while the worker drains', async () => {
    await healthzAnswers(200);
    // A call that never answers keeps the job running and, after SIGTERM, the worker draining.
    provider.queueBehaviour({ kind: 'hang' });
    const accepted = await submit(api, { kind: 'image', prompt: SECRET_PROMPT, ...OPENAI }, randomUUID());
    const id = String(accepted.body.id);
    await eventually(() => assert.equal(provider.openRequests(), 1));

    const { socket } = await openStream(api);
    const sse = new AbortController();
    const events = await apiFetch(api, `/v1/generations/${id}/events`, { signal: sse.signal });
    assert.equal(events.status, 200);
    await eventually(async () => {
      const metrics = await scrape(api.url);
      assert.equal(valueOf(metrics, 'kiln_open_sockets', { kind: 'websocket' }), 1);
      assert.equal(valueOf(metrics, 'kiln_open_sockets', { kind: 'sse' }), 1);
    });
    socket.close();
    sse.abort();
    await eventually(async () => assert.equal(valueOf(await scrape(api.url), 'kiln_open_sockets'), 0));

    worker.child.kill('SIGTERM');
    const draining = assertErrorShape(await healthzAnswers(503));
    assert.deepEqual(draining, { code: 'unhealthy', message: 'worker is not polling' });
    const exited = new Promise((resolve) => worker.child.once('exit', resolve));
    worker.child.kill('SIGKILL');
    await exited;
  });

  test('a worker with nothing in flight exits 0 on SIGTERM, its HTTP server and signal check closed', async () => {
    const another = spawnKilnProcess(ctx, 'worker');
    const url = await another.url;
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const exited = new Promise<number | null>((resolve) => another.child.once('exit', resolve));
    another.child.kill('SIGTERM');
    assert.equal(await exited, 0, another.output.text().slice(-2000));
  });
});

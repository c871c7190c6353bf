import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { ensureWebhookSecret } from '../src/db/webhook-secret-repository.js';
import { kilnDataConverter } from '../src/temporal-client.js';
import { startFakeOpenAIImagesServer, type FakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import {
  SpanKind,
  startFakeOtlpReceiver,
  type FakeOtlpReceiver,
  type ReceivedSpan,
} from './fakes/otlp-receiver.js';
import { startWebhookReceiver, type FakeWebhookReceiver } from './fakes/webhook-receiver.js';
import { pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { spawnKilnProcess, type KilnProcess } from './harness/process-output.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const workflowsPath = path.resolve(fileURLToPath(new URL('../src/workflows/index.ts', import.meta.url)));
/** How long spans may take to arrive from both processes: a deadline, not a measurement. */
const SETTLE_MS = 30_000;

/** The spans one image job's trace holds, whichever process made them. */
const JOB_SPANS = [
  'POST /v1/generations',
  'StartWorkflow:runGeneration',
  'RunWorkflow:runGeneration',
  'StartActivity:admitWaitingJobs',
  'RunActivity:admitWaitingJobs',
  'StartActivity:callProvider',
  'RunActivity:callProvider',
  'provider.generate_image',
  'storage.put',
  'StartActivity:storeResultAndSucceed',
  'RunActivity:storeResultAndSucceed',
];

let otlp: FakeOtlpReceiver;
let provider: FakeOpenAIImagesServer;
let webhooks: FakeWebhookReceiver;
let ctx: TestContext;
let worker: KilnProcess;
let apiProcess: KilnProcess;
let api: ApiTarget;

before(async () => {
  otlp = await startFakeOtlpReceiver();
  provider = await startFakeOpenAIImagesServer();
  webhooks = await startWebhookReceiver();
  ctx = await createTestContext({
    OPENAI_API_KEY: provider.apiKey,
    OPENAI_BASE_URL: provider.url,
    // The receiver listens on 127.0.0.1, which the guard refuses by default.
    WEBHOOK_ALLOW_PRIVATE: 'true',
  });
  webhooks.setSecret((await ensureWebhookSecret(ctx.database.db, ctx.userId)).secret);
  // The real exporter in real processes; its batches go out every 100 ms instead of every 5 s.
  const tracing = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '100' };
  worker = spawnKilnProcess(ctx, 'worker', tracing);
  apiProcess = spawnKilnProcess(ctx, 'api', tracing);
  api = { url: await apiProcess.url, apiKey: ctx.apiKey };
  await worker.url;
});
after(async () => {
  await ctx.cleanup();
  await Promise.all([otlp.close(), provider.close(), webhooks.close()]);
});

/** Polls until `ready` holds for what has arrived; past the deadline the last check's error stands. */
async function eventually<T>(check: () => T): Promise<T> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    try {
      return check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function named(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const span = spans.find((candidate) => candidate.name === name);
  assert.ok(span, `no ${name} span among ${spans.map((s) => s.name).join(', ')}`);
  return span;
}

/** Whether `ancestor` is on the way from `span` up to the root. */
function descends(spans: ReceivedSpan[], span: ReceivedSpan, ancestor: ReceivedSpan): boolean {
  const byId = new Map(spans.map((candidate) => [candidate.spanId, candidate]));
  for (let at = span.parentSpanId; at !== undefined; at = byId.get(at)?.parentSpanId) {
    if (at === ancestor.spanId) return true;
  }
  return false;
}

/** One root, and every other span's parent a span of the same trace: a tree, not loose spans. */
function assertConnected(spans: ReceivedSpan[]): ReceivedSpan {
  const ids = new Set(spans.map((span) => span.spanId));
  const roots = spans.filter((span) => span.parentSpanId === undefined);
  assert.equal(roots.length, 1, `roots: ${roots.map((s) => s.name).join(', ')}`);
  for (const span of spans) {
    if (span.parentSpanId !== undefined) assert.ok(ids.has(span.parentSpanId), `${span.name} hangs loose`);
  }
  return roots[0]!;
}

/** A job that ran traced: its id, the trace its events name, and the size of its output. */
interface TracedJob {
  jobId: string;
  traceId: string;
  byteSize: number;
}

async function runTracedJob(): Promise<TracedJob> {
  const body = {
    kind: 'image',
    provider: 'openai',
    model: 'dall-e-2',
    prompt: `a traced kiln ${randomUUID()}`,
    params: { size: '256x256' },
    webhook: { url: webhooks.endpoint('traced') },
  };
  const accepted = await submit(api, body, randomUUID());
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  const jobId = String(accepted.body.id);
  const done = await pollUntilDone(api, jobId);
  assert.equal(done.status, 'succeeded');
  const events = await ctx.database.db
    .selectFrom('job_events')
    .select(['seq', 'trace_id'])
    .where('job_id', '=', jobId)
    .orderBy('seq')
    .execute();
  const traceIds = new Set(events.map((event) => event.trace_id));
  assert.equal(traceIds.size, 1, `every event of the job is of one trace: ${JSON.stringify(events)}`);
  const [traceId] = traceIds;
  assert.match(traceId ?? '', /^[0-9a-f]{32}$/);
  return { jobId, traceId: traceId!, byteSize: done.result!.byteSize };
}

describe('with OTEL_EXPORTER_OTLP_ENDPOINT set', () => {
  let job: TracedJob;
  let spans: ReceivedSpan[];

  before(async () => {
    job = await runTracedJob();
    spans = await eventually(() => {
      const trace = otlp.trace(job.traceId);
      for (const name of JOB_SPANS) named(trace, name);
      return trace;
    });
  });

  test('one job is one trace, rooted at the API request, through both processes to the provider', () => {
    const root = assertConnected(spans);
    assert.equal(root.name, 'POST /v1/generations');
    assert.equal(root.kind, SpanKind.server);
    assert.equal(root.service, 'kiln-api');
    assert.equal(root.attributes['http.route'], '/v1/generations');
    assert.equal(named(spans, 'StartWorkflow:runGeneration').service, 'kiln-api');
    assert.equal(named(spans, 'RunWorkflow:runGeneration').service, 'kiln-worker');
    assert.equal(otlp.refused(), 0);
  });

  test('the workflow run holds its activities, local ones included, each under its scheduling span', () => {
    const run = named(spans, 'RunWorkflow:runGeneration');
    assert.ok(descends(spans, run, named(spans, 'StartWorkflow:runGeneration')));
    for (const activity of ['admitWaitingJobs', 'callProvider', 'storeResultAndSucceed']) {
      const scheduled = named(spans, `StartActivity:${activity}`);
      const ran = named(spans, `RunActivity:${activity}`);
      assert.equal(scheduled.parentSpanId, run.spanId, activity);
      assert.equal(ran.parentSpanId, scheduled.spanId, activity);
      assert.equal(ran.attributes.temporalWorkflowId, job.jobId);
    }
  });

  test("the provider call carries the provider's own request id; the output's put is in the call", () => {
    const call = named(spans, 'RunActivity:callProvider');
    const generate = named(spans, 'provider.generate_image');
    assert.equal(generate.parentSpanId, call.spanId);
    assert.equal(generate.attributes['kiln.provider'], 'openai');
    assert.equal(generate.attributes['kiln.provider.model'], 'dall-e-2');
    // What the fake sent in `x-request-id`: nothing in Kiln makes such ids up.
    assert.match(String(generate.attributes['kiln.provider.request_id']), /^req_[0-9a-f-]{36}$/);
    const put = named(spans, 'storage.put');
    assert.ok(descends(spans, put, call));
    assert.equal(put.attributes['kiln.storage.key'], `results/${job.jobId}`);
    assert.equal(put.attributes['kiln.storage.bytes'], job.byteSize);
  });

  test('its webhook delivery is a trace of its own, linked to the change that dispatched it', async () => {
    assert.ok(!spans.some((span) => span.name.endsWith(':deliverWebhook')), 'no delivery in the job trace');
    const delivery = await eventually(() => {
      const dispatch = otlp
        .spans()
        .find(
          (span) =>
            span.name === 'webhook.dispatch' && span.links.some((link) => link.traceId === job.traceId),
        );
      assert.ok(dispatch, 'a dispatch linked to the job trace');
      const trace = otlp.trace(dispatch.traceId);
      // The run's span ends, and is sent, with the workflow: last.
      for (const name of ['RunWorkflow:deliverWebhook', 'StartActivity:attemptWebhookDelivery'])
        named(trace, name);
      named(trace, 'RunActivity:attemptWebhookDelivery');
      return { dispatch, trace };
    });
    assert.notEqual(delivery.dispatch.traceId, job.traceId);
    assert.equal(assertConnected(delivery.trace).spanId, delivery.dispatch.spanId);
    const linked = delivery.dispatch.links.find((link) => link.traceId === job.traceId)!;
    const cause = spans.find((span) => span.spanId === linked.spanId);
    assert.equal(cause?.name, 'RunActivity:storeResultAndSucceed', 'the terminal write dispatched it');
    assert.equal(webhooks.received('traced').at(-1)?.status, 204);
  });

  test("the job's log lines in both processes name its trace", () => {
    const submitted = apiProcess.output
      .lines()
      .find((line) => line.msg === 'job submitted' && line.jobId === job.jobId);
    assert.equal(submitted?.trace_id, job.traceId);
    const started = worker.output
      .lines()
      .find((line) => line.msg === 'provider call started' && line.jobId === job.jobId);
    assert.equal(started?.trace_id, job.traceId);
    assert.match(String(started?.span_id), /^[0-9a-f]{16}$/);
  });

  test('the traced run replays on workers without tracing: the interceptors changed no command', async () => {
    const history = await ctx.temporal.workflow.getHandle(job.jobId).fetchHistory();
    await Worker.runReplayHistory(
      { workflowsPath, dataConverter: kilnDataConverter(ctx.config.temporal) },
      history,
    );
  });
});

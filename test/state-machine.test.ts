import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createJobTableActivities } from '../src/activities/job-table.js';
import { createProviderActivities } from '../src/activities/provider-call.js';
import { createProviderCallCancels } from '../src/activities/provider-call-cancels.js';
import { submitGeneration } from '../src/use-cases/submit-generation.js';
import { RecentQueues } from '../src/use-cases/recent-queues.js';
import { hashApiKey } from '../src/auth/api-key.js';
import { findJob, IllegalTransitionError, transitionJob } from '../src/db/job-repository.js';
import { JobStatus, TERMINAL_STATUSES } from '../src/jobs/job.js';
import { canTransition, ENTERED_FROM } from '../src/jobs/transitions.js';
import { pino } from 'pino';
import { createLogger } from '../src/logger.js';
import { illegalTransitions } from '../src/observability/metrics.js';
import { createLocalProvider } from '../src/providers/local-provider.js';
import { createProviderRegistry } from '../src/providers/provider-registry.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { resultKeyFor } from '../src/storage/job-object-keys.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const IMAGE_REQUEST = {
  kind: 'image',
  prompt: 'state',
  provider: 'local',
  model: 'kiln-sketch-1',
  size: '256x256',
  maxTokens: null,
} as const;

describe('the job state machine', () => {
  test("terminal statuses are never left but by an operator's retry (failed → queued)", () => {
    for (const from of TERMINAL_STATUSES) {
      for (const to of Object.values(JobStatus)) {
        const retry = from === 'failed' && to === 'queued';
        assert.equal(canTransition(from, to), retry, `${from} → ${to}`);
      }
    }
    assert.deepEqual(ENTERED_FROM.queued, ['failed']);
    assert.equal(canTransition('queued', 'succeeded'), false, 'success only after storing');
    assert.equal(canTransition('running', 'expired'), false, 'a started job cannot expire');
  });

  describe('in the job table', () => {
    let ctx: TestContext;
    before(async () => {
      ctx = await createTestContext();
    });
    after(() => ctx.cleanup());

    async function queuedJob(): Promise<string> {
      // No worker polls this context's queue: the job stays as the API left it.
      const outcome = await submitGeneration(
        {
          db: ctx.database.db,
          temporal: ctx.temporal,
          logger: createLogger(ctx.config.logLevel, 'test-api'),
          config: ctx.config,
          costs: ctx.config.costs,
          providers: configuredProviders(ctx.config),
          queues: new RecentQueues(ctx.database.db, ctx.config),
        },
        { userId: ctx.userId, keySha256: hashApiKey(ctx.apiKey) },
        randomUUID(),
        IMAGE_REQUEST,
      );
      assert.ok(outcome.kind === 'submitted');
      return outcome.submission.row.id;
    }

    test('a provider call that finds its job storing takes the output an earlier attempt kept, and calls nothing', async () => {
      const id = await queuedJob();
      // What an attempt lost to Temporal, but not yet done, leaves after this one looked for its output.
      await transitionJob(ctx.database.db, id, JobStatus.running, { attempts: 1 });
      const kept = await ctx.store.put(resultKeyFor(id), Buffer.from('kept'), 'image/png');
      const storing = await transitionJob(ctx.database.db, id, JobStatus.storing, { progress: 100 });
      const deps = {
        ...ctxDeps(ctx),
        providers: createProviderRegistry([createLocalProvider({ delayMs: 0, steps: 1 })]),
      };
      const activities = createProviderActivities(deps);
      const env = new MockActivityEnvironment({ attempt: 1 }, { client: ctx.temporal });
      const outcome = await env.run(() =>
        activities.callProvider({ jobId: id, request: IMAGE_REQUEST, seed: 1 }),
      );
      assert.deepEqual(outcome, { kind: 'generated', output: kept });
      assert.deepEqual(await findJob(ctx.database.db, id), storing, 'no call started, nothing written');
    });

    test('an illegal transition is refused in the UPDATE and overwrites nothing', async () => {
      const id = await queuedJob();
      const before = await findJob(ctx.database.db, id);
      await assert.rejects(
        transitionJob(ctx.database.db, id, JobStatus.succeeded, { storage_key: 'results/forged' }),
        (error: unknown) =>
          error instanceof IllegalTransitionError && error.from === 'queued' && error.to === 'succeeded',
      );
      const after = await findJob(ctx.database.db, id);
      assert.deepEqual(after, before);
    });

    test('re-entering the current status is a harmless no-op, as activity retries need', async () => {
      const id = await queuedJob();
      const first = await transitionJob(ctx.database.db, id, JobStatus.canceled);
      const again = await transitionJob(ctx.database.db, id, JobStatus.canceled);
      assert.equal(again.version, first.version);
    });

    test('a write the job is already past changes nothing, and the end it finds is the one returned', async () => {
      const id = await queuedJob();
      await transitionJob(ctx.database.db, id, JobStatus.canceled);
      const ended = await findJob(ctx.database.db, id);
      const activities = createJobTableActivities(ctxDeps(ctx));
      // What a replay after the end re-runs: every earlier write of the job, then another ending.
      const env = new MockActivityEnvironment({}, { client: ctx.temporal });
      const output = { key: `results/${id}`, contentType: 'image/png', byteSize: 1, sha256: 'ab' };
      const late = await env.run(() => activities.storeResultAndSucceed({ jobId: id, output }));
      assert.deepEqual(late, { status: 'canceled', failure: null });
      const ending = await env.run(() =>
        activities.markJobFailed({ jobId: id, code: 'timeout', message: 'late' }),
      );
      assert.deepEqual(ending, { status: 'canceled', failure: null });
      assert.deepEqual(await findJob(ctx.database.db, id), ended);
    });

    test('the job-table activity fails loudly: non-retryable failure, error log with the job id, a counter', async () => {
      const id = await queuedJob();
      const lines: string[] = [];
      const spy = pino({ level: 'error' }, { write: (line: string) => lines.push(line) });
      const activities = createJobTableActivities({ ...ctxDeps(ctx), logger: spy });
      const counted = await countOf('succeeded');
      const output = { key: `results/${id}`, contentType: 'image/png', byteSize: 1, sha256: 'ab' };
      await assert.rejects(activities.storeResultAndSucceed({ jobId: id, output }), (error: unknown) => {
        return (
          error instanceof ApplicationFailure && error.nonRetryable && error.type === 'illegal_transition'
        );
      });
      assert.equal(await countOf('succeeded'), counted + 1);
      assert.ok(lines.some((line) => line.includes(id) && line.includes('transition refused')));
      assert.equal((await findJob(ctx.database.db, id))?.status, 'queued');
    });
  });
});

function ctxDeps(ctx: TestContext) {
  return {
    db: ctx.database.db,
    store: ctx.store,
    providers: createProviderRegistry([]),
    logger: createLogger('silent', 'test'),
    circuit: ctx.config.circuit,
    retention: ctx.config.retention,
    orphans: ctx.config.orphans,
    plans: ctx.config.plans,
    providerLimits: ctx.config.providerLimits,
    webhooks: ctx.config.webhooks,
    batches: ctx.config.batches,
    callCancels: createProviderCallCancels(),
    taskQueue: ctx.config.temporal.taskQueue,
  };
}

async function countOf(to: string): Promise<number> {
  const metric = await illegalTransitions.get();
  return metric.values.find((value) => value.labels.to === to)?.value ?? 0;
}

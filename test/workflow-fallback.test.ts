import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CallProviderInput } from '../src/activities/provider-call.js';
import type { RecordProviderSwitchInput, StoreResultInput } from '../src/activities/job-table.js';
import { FailureCode, WaitReason, type SwitchReason } from '../src/jobs/job.js';
import { failure, waiting, type Answer } from './harness/generation-fakes.js';
import {
  PRIMARY_COST,
  startWorkflowRunner,
  type Run,
  type WorkflowRunner,
} from './harness/workflow-runner.js';

/*
 * The real runGeneration workflow with a fallback chain (`fake`, then `spare`, then `third`), against
 * fake activities: which provider each call went to, which switches were recorded, and what the job
 * was charged, read off the calls the fakes recorded.
 */

const PARALLEL = { concurrency: 3 };

/** The provider each call went to, in order. */
const calledProviders = (run: Run) =>
  run.argsOf('callProvider').map((arg) => (arg as CallProviderInput).request.provider);

/** Each recorded switch as `from→to:reason`. */
const switches = (run: Run) =>
  run.argsOf('recordProviderSwitch').map((arg) => {
    const { servedBy } = arg as RecordProviderSwitchInput;
    return `${servedBy.switched?.from.provider}→${servedBy.provider}:${servedBy.switched?.reason}`;
  });

const settledAt = (run: Run) =>
  (run.argOf('storeResultAndSucceed') as StoreResultInput | undefined)?.settleAt;

const succeeded = { closed: 'completed', jobStatus: 'succeeded' } as const;

describe('runGeneration: moving on along a fallback chain', { timeout: 120_000 }, () => {
  let runner: WorkflowRunner;
  const runJob: WorkflowRunner['runJob'] = (...args) => runner.runJob(...args);

  before(async () => {
    runner = await startWorkflowRunner();
  });
  after(() => runner?.stop());

  describe('each reason to move on', PARALLEL, () => {
    const reasons: { why: string; answers: Answer[]; reason: SwitchReason; calls: string[] }[] = [
      {
        why: 'an open circuit, at once',
        answers: [waiting(30_000, WaitReason.circuitOpen)],
        reason: 'circuit_open',
        calls: ['fake', 'spare'],
      },
      {
        why: 'provider_unavailable twice in a row',
        answers: [failure(FailureCode.providerUnavailable), failure(FailureCode.timeout)],
        reason: 'provider_unavailable',
        calls: ['fake', 'fake', 'spare'],
      },
      {
        why: 'refused credentials, which no retry there mends',
        answers: [failure(FailureCode.authentication)],
        reason: 'authentication',
        calls: ['fake', 'spare'],
      },
      {
        why: 'a Retry-After past the retry budget',
        answers: [failure(FailureCode.rateLimited, { retryAfterMs: 120_000 })],
        reason: 'rate_limited',
        calls: ['fake', 'spare'],
      },
      {
        why: 'a pause past the retry budget',
        answers: [waiting(120_000, WaitReason.rateLimited)],
        reason: 'rate_limited',
        calls: ['fake', 'spare'],
      },
    ];
    for (const { why, answers, reason, calls } of reasons) {
      test(`${why}; charged the price of the one that served`, async () => {
        const run = await runJob({ answers, fallbacks: ['spare', 'third'] });
        assert.deepEqual(calledProviders(run), calls);
        assert.deepEqual(switches(run), [`fake→spare:${reason}`]);
        const served = run.argOf('recordProviderSwitch') as RecordProviderSwitchInput;
        assert.deepEqual(served.servedBy, {
          provider: 'spare',
          model: 'spare-1',
          size: '512x512',
          entry: 1,
          switched: { from: { provider: 'fake', model: 'fake-1' }, reason },
        });
        const asked = (run.argsOf('callProvider').at(-1) as CallProviderInput).request;
        assert.equal(asked.size, '512x512', 'the fallback is asked for its mapped size');
        assert.equal(settledAt(run), PRIMARY_COST - 1);
        assert.deepEqual(run.end, succeeded);
      });
    }

    test('a queue that cannot start the call before the start deadline', async () => {
      const run = await runJob({
        answers: [waiting(20_000, WaitReason.providerSlot)],
        fallbacks: ['spare'],
        deadline: { startWithinSeconds: 4 },
      });
      assert.deepEqual(calledProviders(run), ['fake', 'spare']);
      assert.deepEqual(switches(run), ['fake→spare:start_deadline']);
      assert.equal(run.count('markJobExpired'), 0);
      assert.deepEqual(run.end, succeeded);
    });
  });

  describe('a circuit found open before the call is queued', PARALLEL, () => {
    test('moves the job on without queuing a call on the dead provider', async () => {
      const run = await runJob({ fallbacks: ['spare'], openCircuits: ['fake'] });
      assert.deepEqual(calledProviders(run), ['spare']);
      assert.deepEqual(switches(run), ['fake→spare:circuit_open']);
      assert.deepEqual(run.argsOf('providerCircuitOpenForMs'), ['fake'], 'the last entry is not asked');
      assert.deepEqual(run.end, succeeded);
    });
  });

  describe('a queue that no worker takes the call from', PARALLEL, () => {
    test('past the start deadline: nothing was sent, the fallback is called', async () => {
      const run = await runJob({
        fallbacks: ['spare'],
        fakeUnpolled: true,
        deadline: { startWithinSeconds: 6 },
      });
      assert.deepEqual(calledProviders(run), ['spare']);
      assert.deepEqual(switches(run), ['fake→spare:start_deadline']);
      assert.deepEqual(run.end, succeeded);
    });
  });

  describe('what does not move a job on', PARALLEL, () => {
    for (const code of [FailureCode.invalidRequest, FailureCode.contentPolicy]) {
      test(`${code}: the request's own fault ends the job where it is`, async () => {
        const run = await runJob({ answers: [failure(code)], fallbacks: ['spare'] });
        assert.deepEqual(calledProviders(run), ['fake']);
        assert.equal(run.count('recordProviderSwitch'), 0);
        assert.deepEqual(run.end, {
          closed: 'failed',
          type: code,
          message: `fake ${code}`,
          jobStatus: 'failed',
        });
      });
    }

    test('a short pause or a single failure is waited out on the same provider', async () => {
      const run = await runJob({
        answers: [
          failure(FailureCode.rateLimited, { retryAfterMs: 50 }),
          waiting(50, WaitReason.providerSlot),
          failure(FailureCode.providerUnavailable),
        ],
        fallbacks: ['spare'],
      });
      assert.deepEqual(calledProviders(run), ['fake', 'fake', 'fake', 'fake']);
      assert.equal(run.count('recordProviderSwitch'), 0);
      assert.equal(settledAt(run), PRIMARY_COST, 'the entry submitted for is charged its own price');
    });

    test('a task the provider may still run: its next call resumes it there, not elsewhere', async () => {
      const lost = failure(FailureCode.providerUnavailable, { taskLivesOn: true });
      const run = await runJob({ answers: [lost, lost], fallbacks: ['spare'], retry: { maxCalls: 4 } });
      assert.deepEqual(calledProviders(run), ['fake', 'fake', 'fake']);
      assert.equal(run.count('recordProviderSwitch'), 0);
      assert.deepEqual(run.end, succeeded);
    });

    test('a task that may still run holds the job through any wait, an open circuit included', async () => {
      const lost = failure(FailureCode.providerUnavailable, { taskLivesOn: true });
      const run = await runJob({
        answers: [lost, waiting(100, WaitReason.circuitOpen)],
        fallbacks: ['spare'],
      });
      assert.equal(run.count('recordProviderSwitch'), 0);
      assert.deepEqual(calledProviders(run), ['fake', 'fake', 'fake']);
      assert.deepEqual(run.end, succeeded);
    });

    test('the last entry has nowhere to go: it waits out its circuit as a job without a chain does', async () => {
      const run = await runJob({
        answers: [waiting(30_000, WaitReason.circuitOpen), waiting(100, WaitReason.circuitOpen)],
        fallbacks: ['spare'],
      });
      assert.deepEqual(calledProviders(run), ['fake', 'spare', 'spare']);
      assert.deepEqual(switches(run), ['fake→spare:circuit_open']);
      assert.deepEqual(run.end, succeeded);
    });

    test('without a chain, nothing is switched and the reservation is spent whole', async () => {
      const run = await runJob({ answers: [waiting(100, WaitReason.circuitOpen)] });
      assert.deepEqual(calledProviders(run), ['fake', 'fake']);
      assert.equal(run.count('recordProviderSwitch'), 0);
      assert.equal(settledAt(run), undefined);
    });
  });

  describe('the job’s limits hold across the chain', PARALLEL, () => {
    test('maxCalls counts the calls to every entry', async () => {
      const down = failure(FailureCode.providerUnavailable);
      const run = await runJob({
        answers: [down, down, down, down],
        fallbacks: ['spare', 'third'],
        retry: { maxCalls: 3 },
      });
      assert.deepEqual(calledProviders(run), ['fake', 'fake', 'spare']);
      assert.equal(run.count('storeResultAndSucceed'), 0);
      assert.deepEqual(run.end, {
        closed: 'failed',
        type: 'provider_unavailable',
        message: 'fake provider_unavailable',
        jobStatus: 'failed',
      });
    });

    test('a chain walked to its end: each entry in turn, then the last one is retried', async () => {
      const down = failure(FailureCode.providerUnavailable);
      const run = await runJob({
        answers: [down, waiting(30_000, WaitReason.circuitOpen), down],
        fallbacks: ['spare', 'third'],
        afterFailedCalls: 1,
        retry: { maxCalls: 5 },
      });
      assert.deepEqual(calledProviders(run), ['fake', 'spare', 'third', 'third']);
      assert.deepEqual(switches(run), ['fake→spare:provider_unavailable', 'spare→third:circuit_open']);
      assert.equal(settledAt(run), PRIMARY_COST - 2);
      assert.deepEqual(run.end, succeeded);
    });
  });
});

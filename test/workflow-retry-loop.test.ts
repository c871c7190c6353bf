import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FailureCode } from '../src/jobs/job.js';
import { failure, generated, hang, unclassified, waiting, type Event } from './harness/generation-fakes.js';
import {
  startWorkflowRunner,
  type Run,
  type WorkflowEnd,
  type WorkflowRunner,
} from './harness/workflow-runner.js';

/*
 * The real runGeneration workflow (and its provider retry loop) on a real Temporal dev server, with
 * every activity faked: what the workflow decided is read off the calls the fakes recorded and the way
 * the workflow closed.
 */

/*
 * Each test has task queues and a workflow id of its own, so a few run at once: most of a test is
 * waiting for a deadline or for its workers to start, which a 2-core machine can overlap.
 */
const PARALLEL = { concurrency: 3 };

/** Milliseconds from the first `from` to the first `to`. */
function gapMs(run: Run, from: Event, to: Event): number {
  return (run.timesOf(to)[0] ?? NaN) - (run.timesOf(from)[0] ?? NaN);
}

const failedWith = (code: string, message: string): Partial<WorkflowEnd> => ({
  closed: 'failed',
  type: code,
  message,
});

describe('runGeneration: the provider retry loop, against fake activities', { timeout: 120_000 }, () => {
  let runner: WorkflowRunner;
  const runJob: WorkflowRunner['runJob'] = (...args) => runner.runJob(...args);

  before(async () => {
    runner = await startWorkflowRunner();
  });
  after(() => runner?.stop());

  describe('calls and their count', PARALLEL, () => {
    test('a first call that succeeds is stored and marked succeeded', async () => {
      const run = await runJob({});
      assert.deepEqual(run.events, ['admitWaitingJobs', 'callProvider', 'storeResultAndSucceed']);
      const { jobId } = run;
      assert.deepEqual(run.argOf('storeResultAndSucceed'), {
        jobId,
        output: { key: `results/${jobId}`, contentType: 'image/png', byteSize: 3, sha256: 'ab'.repeat(32) },
      });
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    test('retryable failures are called again until one succeeds', async () => {
      const run = await runJob({
        retry: { maxCalls: 3 },
        answers: [failure(FailureCode.providerUnavailable), failure(FailureCode.timeout), generated],
      });
      assert.equal(run.count('callProvider'), 3);
      assert.equal(run.count('markJobFailed'), 0);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    test('maxCalls counted failures fail the job with the last code, and no call follows', async () => {
      const run = await runJob({
        retry: { maxCalls: 3 },
        answers: [
          failure(FailureCode.timeout),
          failure(FailureCode.timeout),
          failure(FailureCode.providerUnavailable),
        ],
      });
      assert.equal(run.count('callProvider'), 3);
      assert.deepEqual(run.argOf('markJobFailed'), {
        jobId: run.jobId,
        code: 'provider_unavailable',
        message: 'fake provider_unavailable',
      });
      assert.deepEqual(run.events.slice(-2), ['markJobFailed', 'discardOutputs']);
      assert.deepEqual(run.end, {
        ...failedWith('provider_unavailable', 'fake provider_unavailable'),
        jobStatus: 'failed',
      });
    });

    test('429s and failed probes spend no calls: with maxCalls 1 the job still succeeds', async () => {
      const run = await runJob({
        retry: { maxCalls: 1 },
        answers: [
          failure(FailureCode.rateLimited),
          failure(FailureCode.providerUnavailable, { probe: true }),
          failure(FailureCode.rateLimited, { retryAfterMs: 20 }),
          failure(FailureCode.timeout, { probe: true }),
        ],
      });
      assert.equal(run.count('callProvider'), 5);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    test('between 429s and probes, the counted failures still reach maxCalls', async () => {
      const run = await runJob({
        retry: { maxCalls: 2 },
        answers: [
          failure(FailureCode.rateLimited, { retryAfterMs: 20 }),
          failure(FailureCode.providerUnavailable),
          failure(FailureCode.providerUnavailable, { probe: true }),
          failure(FailureCode.rateLimited, { retryAfterMs: 20 }),
          failure(FailureCode.timeout),
        ],
      });
      assert.equal(run.count('callProvider'), 5);
      assert.equal((run.argOf('markJobFailed') as { code: string }).code, 'timeout');
      assert.deepEqual(run.end, { ...failedWith('timeout', 'fake timeout'), jobStatus: 'failed' });
    });

    test('waiting outcomes (breaker, pause, full slots) cost no calls', async () => {
      const run = await runJob({
        retry: { maxCalls: 2 },
        answers: [waiting(30), waiting(30), waiting(30), failure(FailureCode.timeout)],
      });
      // Had the three waits counted, the timeout would have been the job's last call.
      assert.equal(run.count('callProvider'), 5);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    test("a failure's retryAfterMs is waited before the next call, in place of the backoff", async () => {
      const run = await runJob({ answers: [failure(FailureCode.rateLimited, { retryAfterMs: 800 })] });
      const callTimes = run.timesOf('callProvider');
      assert.equal(callTimes.length, 2);
      const [first = NaN, second = NaN] = callTimes;
      assert.ok(second - first >= 750, `next call ${second - first} ms after the 429`);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });
  });

  describe('failures that end the job', PARALLEL, () => {
    const permanent = [
      { answer: failure(FailureCode.contentPolicy), code: 'content_policy', message: 'fake content_policy' },
      {
        answer: failure(FailureCode.invalidRequest),
        code: 'invalid_request',
        message: 'fake invalid_request',
      },
      { answer: failure(FailureCode.authentication), code: 'authentication', message: 'fake authentication' },
      // A failure type outside the closed set is a bug, not a provider's verdict: internal, not retried.
      { answer: unclassified('TypeError'), code: 'internal', message: 'fake TypeError' },
    ];
    for (const { answer, code, message } of permanent) {
      test(`a non-retryable ${code} fails the job at once`, async () => {
        const run = await runJob({ answers: [answer] });
        assert.equal(run.count('callProvider'), 1);
        assert.deepEqual(run.events.slice(-2), ['markJobFailed', 'discardOutputs']);
        assert.equal((run.argOf('markJobFailed') as { code: string }).code, code);
        assert.deepEqual(run.end, { ...failedWith(code, message), jobStatus: 'failed' });
      });
    }

    test('invalid outputs past maxInvalidOutputs fail the job invalid_output, calls to spare', async () => {
      const run = await runJob({
        retry: { maxCalls: 5, maxInvalidOutputs: 1 },
        answers: [
          failure(FailureCode.invalidOutput),
          failure(FailureCode.timeout),
          failure(FailureCode.invalidOutput),
        ],
      });
      assert.equal(run.count('callProvider'), 3);
      assert.deepEqual(run.end, {
        ...failedWith('invalid_output', 'fake invalid_output'),
        jobStatus: 'failed',
      });
    });

    test('a retry that would start past the budget fails the job now, with the failure and why', async () => {
      const run = await runJob({
        retry: { budgetSeconds: 5 },
        answers: [failure(FailureCode.timeout, { retryAfterMs: 10_000 })],
      });
      assert.equal(run.count('callProvider'), 1);
      const message = 'fake timeout; retry budget exhausted';
      assert.equal((run.argOf('markJobFailed') as { message: string }).message, message);
      // Not slept until the budget's end either: the job fails as soon as the wait is known.
      assert.ok(gapMs(run, 'callProvider', 'markJobFailed') < 3000, 'failed without waiting first');
      assert.deepEqual(run.end, { ...failedWith('timeout', message), jobStatus: 'failed' });
    });

    test('a wait past the budget before any failure fails provider_unavailable', async () => {
      const run = await runJob({ retry: { budgetSeconds: 3 }, answers: [waiting(5000)] });
      assert.equal(run.count('callProvider'), 1);
      assert.deepEqual(run.argOf('markJobFailed'), {
        jobId: run.jobId,
        code: 'provider_unavailable',
        message: 'retry budget exhausted',
      });
      assert.deepEqual(run.end, {
        ...failedWith('provider_unavailable', 'retry budget exhausted'),
        jobStatus: 'failed',
      });
    });
  });

  describe('the start deadline', PARALLEL, () => {
    const notStarted = [
      // The 5 s wait is cut short at the deadline: the job expires then, not when the wait is over.
      { why: 'the provider said wait', script: { answers: [waiting(5000)] }, admissions: 1, calls: 1 },
      { why: 'admission took past it', script: { admitDelayMs: 1500 }, admissions: 1, calls: 0 },
      // Asked once on arrival, once more when the deadline's timer ends its wait for a slot.
      { why: 'no running slot came', script: { admissions: Array(5).fill(false) }, admissions: 2, calls: 0 },
    ];
    for (const { why, script, admissions, calls } of notStarted) {
      test(`expires a job no call reached the provider for: ${why}`, async () => {
        const run = await runJob({ ...script, deadline: { startWithinSeconds: 1 } });
        assert.equal(run.count('admitWaitingJobs'), admissions);
        assert.equal(run.count('callProvider'), calls);
        assert.equal(run.count('markJobFailed'), 0);
        assert.deepEqual(run.events.slice(-2), ['markJobExpired', 'discardOutputs']);
        assert.ok(gapMs(run, 'admitWaitingJobs', 'markJobExpired') < 3500, 'expired at the deadline');
        assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'expired' });
      });
    }

    const reached = [
      { what: 'a failed call', answer: failure(FailureCode.providerUnavailable, { retryAfterMs: 1300 }) },
      { what: 'a 429', answer: failure(FailureCode.rateLimited, { retryAfterMs: 1300 }) },
      { what: 'a failed probe', answer: failure(FailureCode.timeout, { retryAfterMs: 1300, probe: true }) },
    ];
    for (const { what, answer } of reached) {
      test(`no longer applies once ${what} reached the provider`, async () => {
        const run = await runJob({ answers: [answer], deadline: { startWithinSeconds: 1 } });
        assert.equal(run.count('callProvider'), 2);
        assert.equal(run.count('markJobExpired'), 0);
        assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
      });
    }
  });

  describe('the finish deadline and a client cancel', PARALLEL, () => {
    const busy = [
      { doing: 'in a provider call', answers: [hang], events: ['callProvider', 'callProvider canceled'] },
      {
        doing: 'waiting to retry',
        answers: [failure(FailureCode.timeout, { retryAfterMs: 10_000 })],
        events: ['callProvider', 'recordJobWaiting'],
      },
    ];
    for (const { doing, answers, events } of busy) {
      test(`the finish deadline fails a job ${doing} deadline_exceeded`, async () => {
        const run = await runJob({ answers, deadline: { finishWithinSeconds: 1 } });
        assert.deepEqual(run.events, ['admitWaitingJobs', ...events, 'markJobFailed', 'discardOutputs']);
        const message = 'not finished within 1 s';
        assert.deepEqual(run.argOf('markJobFailed'), {
          jobId: run.jobId,
          code: 'deadline_exceeded',
          message,
        });
        assert.deepEqual(run.end, { ...failedWith('deadline_exceeded', message), jobStatus: 'failed' });
      });
    }

    test('a client cancel ends the job canceled, not failed, once the call is aborted', async () => {
      const run = await runJob(
        { answers: [hang], deadline: { finishWithinSeconds: 30 } },
        async (handle, fakes) => {
          await fakes.seen('callProvider');
          await handle.cancel();
        },
      );
      assert.deepEqual(run.events, [
        'admitWaitingJobs',
        'callProvider',
        'callProvider canceled',
        'markJobCanceled',
        'discardOutputs',
      ]);
      assert.deepEqual(run.end, { closed: 'canceled', jobStatus: 'canceled' });
    });
  });

  describe('the workflow ends as the row says', PARALLEL, () => {
    const rowSaysSucceeded = { status: 'succeeded', failure: null } as const;

    test('a cancel whose write finds the job succeeded completes the workflow, outputs kept', async () => {
      const run = await runJob(
        { answers: [hang], endings: { markJobCanceled: rowSaysSucceeded } },
        async (handle, fakes) => {
          await fakes.seen('callProvider');
          await handle.cancel();
        },
      );
      assert.equal(run.count('markJobCanceled'), 1);
      assert.equal(run.count('discardOutputs'), 0);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    test("a failure whose write finds another failure fails the workflow with the row's code", async () => {
      const earlier = { code: FailureCode.timeout, message: 'ended earlier' };
      const run = await runJob({
        answers: [unclassified('TypeError')],
        endings: { markJobFailed: { status: 'failed', failure: earlier } },
      });
      assert.equal((run.argOf('markJobFailed') as { code: string }).code, 'internal');
      assert.deepEqual(run.end, { ...failedWith('timeout', 'ended earlier'), jobStatus: 'failed' });
    });

    test('a failure whose write finds the job canceled fails the workflow as canceled', async () => {
      const run = await runJob({
        answers: [failure(FailureCode.contentPolicy)],
        endings: { markJobFailed: { status: 'canceled', failure: null } },
      });
      assert.deepEqual(run.end, { ...failedWith('canceled', 'canceled'), jobStatus: 'canceled' });
    });

    test('a success whose write finds the job expired completes the workflow as expired', async () => {
      const run = await runJob({ endings: { storeResultAndSucceed: { status: 'expired', failure: null } } });
      // The result just stored is not the job's after all.
      assert.deepEqual(run.events.slice(-2), ['storeResultAndSucceed', 'discardOutputs']);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'expired' });
    });
  });
});

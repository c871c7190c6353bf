import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { RecordWaitingInput } from '../src/activities/job-table.js';
import { FailureCode, type JobWaiting } from '../src/jobs/job.js';
import {
  admittedSignal,
  extendDeadlineUpdate,
  jobWaitingQuery,
  type WorkflowWaiting,
} from '../src/workflows/definitions.js';
import { failure, generated, hang, waiting } from './harness/generation-fakes.js';
import { startWorkflowRunner, type Run, type WorkflowRunner } from './harness/workflow-runner.js';

/*
 * What a job waits for, as the real runGeneration workflow tells it (to the job table, through the
 * `recordJobWaiting` activity, and live through the `waiting` query), and a client's deadline extension
 * reaching the waits under way. Activities are fakes; the server is a real Temporal dev server.
 */

const PARALLEL = { concurrency: 3 };

const recordedArgs = (run: Run) => run.argsOf('recordJobWaiting') as RecordWaitingInput[];

/** What each recorded wait says, but for its times. */
function waitsRecorded(run: Run): Omit<JobWaiting, 'since' | 'until'>[] {
  return recordedArgs(run).map(({ waiting: { reason, attempt, maxCalls } }) => ({
    reason,
    attempt,
    maxCalls,
  }));
}

describe('runGeneration tells why a job waits', { timeout: 120_000 }, () => {
  let runner: WorkflowRunner;
  const runJob: WorkflowRunner['runJob'] = (...args) => runner.runJob(...args);

  before(async () => {
    runner = await startWorkflowRunner();
  });
  after(() => runner?.stop());

  describe('to the job table, once per wait', PARALLEL, () => {
    test('a job that calls at once waits for nothing and records nothing', async () => {
      const run = await runJob({});
      assert.equal(run.count('recordJobWaiting'), 0);
    });

    test('backoff after a failed call, for the next call; a 429 is the provider’s pause', async () => {
      const run = await runJob({
        retry: { maxCalls: 3 },
        answers: [failure(FailureCode.providerUnavailable), failure(FailureCode.rateLimited), generated],
      });
      assert.deepEqual(waitsRecorded(run), [
        { reason: 'backoff', attempt: 2, maxCalls: 3 },
        { reason: 'rate_limited', attempt: 2, maxCalls: 3 },
      ]);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    test('the same wait looked at again is recorded once, with the reason the call gave', async () => {
      const run = await runJob({
        answers: [waiting(20, 'circuit_open'), waiting(20, 'circuit_open'), generated],
      });
      assert.deepEqual(waitsRecorded(run), [{ reason: 'circuit_open', attempt: 1, maxCalls: 3 }]);
      const [first] = recordedArgs(run);
      const { since, until } = first!.waiting;
      assert.ok(until && Date.parse(until) - Date.parse(since) === 20, `${since} → ${until}`);
    });

    test('a wait whose call gave no reason (a worker of 0.1.0) is a wait for a provider slot', async () => {
      const run = await runJob({ answers: [waiting(20), generated] });
      assert.deepEqual(waitsRecorded(run), [{ reason: 'provider_slot', attempt: 1, maxCalls: 3 }]);
    });
  });

  describe('live, through the waiting query', PARALLEL, () => {
    test('admission: told while the job waits for a running slot; then the call it awaits', async () => {
      const told: { whileWaiting?: WorkflowWaiting; inCall?: WorkflowWaiting } = {};
      const run = await runJob(
        { admissions: [false], answers: [hang], deadline: { startWithinSeconds: 30 } },
        async (handle, fakes) => {
          await fakes.seen('recordJobWaiting');
          told.whileWaiting = await handle.query(jobWaitingQuery);
          await handle.signal(admittedSignal);
          await fakes.seen('callProvider');
          told.inCall = await handle.query(jobWaitingQuery);
          await handle.cancel();
        },
      );
      assert.equal(told.whileWaiting?.call, null);
      const whileWaiting = told.whileWaiting.waiting;
      assert.equal(whileWaiting?.reason, 'admission');
      assert.equal(whileWaiting.attempt, 1);
      // Until the start deadline: past it the job expires rather than wait on.
      const startBy = Date.parse(whileWaiting.since) + 30_000;
      assert.ok(Math.abs(Date.parse(whileWaiting.until ?? '') - startBy) < 2000, String(whileWaiting.until));
      assert.equal(told.inCall?.waiting, null, 'a job in a call waits for nothing the workflow holds it in');
      assert.deepEqual(
        { ...told.inCall.call, since: undefined },
        { attempt: 1, maxCalls: 3, since: undefined },
      );
      assert.deepEqual(run.end, { closed: 'canceled', jobStatus: 'canceled' });
    });
  });

  describe('a client extends a deadline', PARALLEL, () => {
    test('a later finish deadline lets a job finish that the first one would have failed', async () => {
      let extended: unknown;
      const run = await runJob(
        { answers: [waiting(1500, 'provider_slot'), generated], deadline: { finishWithinSeconds: 1 } },
        async (handle, fakes) => {
          await fakes.seen('callProvider');
          extended = await handle.executeUpdate(extendDeadlineUpdate, {
            args: [{ finishWithinSeconds: 10 }],
          });
        },
      );
      assert.deepEqual(extended, { finishWithinSeconds: 10 });
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    test('a later start deadline keeps a job waiting for admission from expiring', async () => {
      // Still full when the job asks again at its first deadline: only the signal admits it.
      const full = [false, false, false];
      const run = await runJob(
        { admissions: full, deadline: { startWithinSeconds: 1 } },
        async (handle, fakes) => {
          await fakes.seen('recordJobWaiting');
          await handle.executeUpdate(extendDeadlineUpdate, { args: [{ startWithinSeconds: 20 }] });
          await new Promise((resolve) => setTimeout(resolve, 1500));
          await handle.signal(admittedSignal);
        },
      );
      assert.equal(run.count('markJobExpired'), 0);
      assert.equal(run.count('admitWaitingJobs'), 2);
      assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
    });

    for (const [what, deadline, extension, type] of [
      ['an earlier deadline', { finishWithinSeconds: 30 }, { finishWithinSeconds: 10 }, 'deadline_shortened'],
      [
        'a deadline the job has not',
        { finishWithinSeconds: 30 },
        { startWithinSeconds: 60 },
        'no_such_deadline',
      ],
    ] as const) {
      test(`${what} is refused with ${type}, and the job goes on`, async () => {
        let refusal: unknown;
        const run = await runJob({ answers: [waiting(300), generated], deadline }, async (handle, fakes) => {
          await fakes.seen('callProvider');
          refusal = await handle
            .executeUpdate(extendDeadlineUpdate, { args: [extension] })
            .catch((e: unknown) => e);
        });
        assert.ok(refusal instanceof WorkflowUpdateFailedError, String(refusal));
        assert.ok(refusal.cause instanceof ApplicationFailure);
        assert.equal(refusal.cause.type, type);
        assert.deepEqual(run.end, { closed: 'completed', jobStatus: 'succeeded' });
      });
    }
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MarkJobFailedInput, StoreResultInput } from '../src/activities/job-table.js';
import { FailureCode } from '../src/jobs/job.js';
import { creditsForUsage, estimatedTokens, type TokenPricing } from '../src/jobs/token-pricing.js';
import { failure, generatedText } from './harness/generation-fakes.js';
import {
  PRIMARY_COST,
  startWorkflowRunner,
  type Run,
  type WorkflowRunner,
} from './harness/workflow-runner.js';

/*
 * The real runGeneration workflow for a text job priced by tokens, against fake activities: what it asks
 * the job table to charge, by the usage the call reported and the entry of its chain that served it.
 */

const DEAR: TokenPricing = {
  since: '2026-01-01',
  inputPerMillion: 90_000,
  outputPerMillion: 300_000,
  promptTokens: 30,
};
const CHEAP: TokenPricing = {
  since: '2026-01-01',
  inputPerMillion: 10_000,
  outputPerMillion: 20_000,
  promptTokens: 30,
};
const USAGE = { inputTokens: 9, outputTokens: 41 };
const twoUnavailable = [failure(FailureCode.providerUnavailable), failure(FailureCode.providerUnavailable)];

const settledAt = (run: Run) =>
  (run.argOf('storeResultAndSucceed') as StoreResultInput | undefined)?.settleAt;

describe('runGeneration: text priced by its tokens', { concurrency: 3, timeout: 120_000 }, () => {
  let runner: WorkflowRunner;

  before(async () => {
    runner = await startWorkflowRunner();
  });
  after(() => runner?.stop());

  test('a job without a chain is charged its usage at its prices', async () => {
    const run = await runner.runJob({ tokenPrices: [DEAR], answers: [generatedText(USAGE)] });
    assert.equal(run.end.jobStatus, 'succeeded');
    // 9 × 0.09 + 41 × 0.3 = 13.11 → 14.
    assert.equal(settledAt(run), 14);
    assert.equal(settledAt(run), creditsForUsage(DEAR, USAGE));
  });

  test("a job a fallback served is charged its usage at the fallback's prices", async () => {
    const run = await runner.runJob({
      tokenPrices: [DEAR, CHEAP],
      fallbacks: ['spare'],
      answers: [...twoUnavailable, generatedText(USAGE)],
    });
    assert.equal(run.end.jobStatus, 'succeeded');
    assert.equal(settledAt(run), creditsForUsage(CHEAP, USAGE));
  });

  test('a fallback priced per job charges its price, whatever the usage', async () => {
    const run = await runner.runJob({
      tokenPrices: [DEAR, null],
      fallbacks: ['spare'],
      answers: [...twoUnavailable, generatedText(USAGE)],
    });
    assert.equal(settledAt(run), PRIMARY_COST - 1);
  });

  test('a job that fails tells the job table how each entry prices what its last call streamed', async () => {
    const run = await runner.runJob({
      tokenPrices: [DEAR, CHEAP],
      fallbacks: ['spare'],
      answers: [failure(FailureCode.contentPolicy)],
    });
    assert.equal(run.end.jobStatus, 'failed');
    const { streamed } = run.argOf('markJobFailed') as MarkJobFailedInput;
    assert.deepEqual(streamed, { pricings: [DEAR, CHEAP], promptTokens: estimatedTokens('a kiln at dawn') });
  });

  test('an image job, or a text job priced per job, tells nothing of streamed text', async () => {
    for (const limits of [{}, { tokenPrices: [null] }]) {
      const run = await runner.runJob({ ...limits, answers: [failure(FailureCode.contentPolicy)] });
      assert.equal((run.argOf('markJobFailed') as MarkJobFailedInput).streamed, undefined);
      assert.equal(settledAt(run), undefined);
    }
  });
});

import { setWorkflowOptions, sleep } from '@temporalio/workflow';
import type { GenerationInput } from '../../src/workflows/definitions.js';
import { pinnedWhenVersioned, runGeneration as released } from '../../src/workflows/run-generation.js';

/*
 * A next release whose runGeneration issues other commands than today's (a timer first): a job started
 * under today's code and replayed on this one fails with nondeterminism. The deploy test runs it beside
 * today's workers as build N+1.
 */
export { deliverWebhook, purgeExpiredJobs, settleOrphanJobs } from '../../src/workflows/index.js';

/** The timer the next release adds, so that the test can tell which build ran a job. */
export const NEXT_RELEASE_TIMER_MS = 10;

export async function runGeneration(input: GenerationInput): Promise<void> {
  await sleep(NEXT_RELEASE_TIMER_MS);
  return released(input);
}

setWorkflowOptions(pinnedWhenVersioned, runGeneration);

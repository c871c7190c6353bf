import { proxyActivities } from '@temporalio/workflow';
import type { BareActivities } from './bare-activities.js';

// A regular activity with the SDK's default retries: the least a durable design can do per job.
const { callProvider } = proxyActivities<BareActivities>({ startToCloseTimeout: '60s' });

/** The `bare` baseline's whole job: one provider call, its image size the result. */
export async function generateImageBare(prompt: string): Promise<number> {
  return callProvider(prompt);
}

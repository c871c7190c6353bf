import { proxyActivities } from '@temporalio/workflow';
import type { OrphanJobActivities } from '../activities/index.js';

// A sweep is a few describes and writes; the next tick retries whatever this one could not finish.
const sweep = proxyActivities<OrphanJobActivities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '5s', maximumInterval: '1m', maximumAttempts: 3 },
});

/** Run by the orphan-sweep schedule: ends job rows that have no workflow behind them. */
export async function settleOrphanJobs(): Promise<number> {
  return sweep.settleOrphanJobs();
}

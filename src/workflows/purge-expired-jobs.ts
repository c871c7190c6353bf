import { proxyActivities } from '@temporalio/workflow';
import type { RetentionActivities } from '../activities/index.js';

// Deleting a large backlog can take a while; the heartbeat shows it is still moving.
const retention = proxyActivities<RetentionActivities>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '2m',
  retry: { initialInterval: '10s', maximumInterval: '5m', maximumAttempts: 5 },
});

/** Run by the retention schedule: removes results and details of jobs past their retention period. */
export async function purgeExpiredJobs(): Promise<number> {
  return retention.purgeExpiredJobs();
}

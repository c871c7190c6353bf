import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

// Job-table writes are small and idempotent: retry them until Postgres is back rather than lose a job.
export const jobTable = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

// Copying one image (a few MB at most) inside the object store. It does not heartbeat, so this timeout
// is also how long a worker lost mid-copy holds the job up: generous for the copy, short for that.
export const storage = proxyActivities<Activities>({
  startToCloseTimeout: '20s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

/*
 * Job-table writes (admission included) are small and idempotent: retried until Postgres is back rather
 * than lose a job. They run as local activities, in the worker that runs the workflow task: no task-
 * queue round trip and no workflow task of their own, which was most of a job's orchestration time. A
 * worker lost mid-write re-runs it on replay, which idempotence makes harmless.
 */
export const jobTable = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

// Copying one image (a few MB at most) inside the object store. It does not heartbeat, so this timeout
// is also how long a worker lost mid-copy holds the job up: generous for the copy, short for that.
export const storage = proxyActivities<Activities>({
  startToCloseTimeout: '20s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

import { proxyLocalActivities } from '@temporalio/workflow';
import type {
  AdmissionActivities,
  JobTableActivities,
  ResultStorageActivities,
} from '../activities/index.js';

/*
 * Job-table writes (admission included) are small and idempotent: retried until Postgres is back rather
 * than lose a job. They run as local activities, in the worker that runs the workflow task: no task-
 * queue round trip and no workflow task of their own, which was most of a job's orchestration time. A
 * worker lost mid-write re-runs it on replay, which idempotence makes harmless.
 */
export const jobTable = proxyLocalActivities<JobTableActivities & AdmissionActivities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

/*
 * Moving one result (a few MB at most) from staging to its final key, in the workflow task that also
 * writes `storing` and `succeeded`: as its own activity it cost a task-queue round trip and a workflow
 * task, which was two fifths of the Temporal server's CPU per job. A worker lost mid-copy is noticed
 * by the workflow task's timeout (10 s) and the copy is re-run on replay; a fixed final key makes that
 * harmless.
 */
export const storage = proxyLocalActivities<ResultStorageActivities>({
  startToCloseTimeout: '20s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

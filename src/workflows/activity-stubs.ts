import { proxyLocalActivities } from '@temporalio/workflow';
import type {
  AdmissionActivities,
  BatchJobActivities,
  JobTableActivities,
  ProviderCircuitActivities,
  ResultCacheActivities,
  ResultStorageActivities,
} from '../activities/index.js';

/*
 * Job-table writes (admission included) are small and idempotent: retried until Postgres is back rather
 * than lose a job. They run as local activities, in the worker that runs the workflow task: no task-
 * queue round trip and no workflow task of their own, which was most of a job's orchestration time. A
 * worker lost mid-write re-runs it on replay, which idempotence makes harmless.
 */
export const jobTable = proxyLocalActivities<
  JobTableActivities & AdmissionActivities & ProviderCircuitActivities
>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

/*
 * Store and discard move outputs of a few MB at most inside the store. `storeResultAndSucceed` writes
 * `storing`, moves the result and writes `succeeded` in one local activity: as a regular activity
 * the move cost a task-queue round trip and a workflow task (two fifths of the Temporal server's CPU
 * per job), and as three local activities two more history markers. A worker lost mid-move is noticed
 * by the workflow task's timeout (10 s) and the whole is re-run on replay; a fixed final key makes that
 * harmless. Retried as the job table is: what cannot succeed (the output lost) fails at once.
 */
const outputMoves = {
  startToCloseTimeout: '20s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
} as const;

export const storage = proxyLocalActivities<ResultStorageActivities>(outputMoves);

export const results = proxyLocalActivities<Pick<JobTableActivities, 'storeResultAndSucceed'>>(outputMoves);

/*
 * The result cache's claim is a job-table write; serving from it copies a stored result into the job's
 * own key before its writes, as storing a call's output moves one: both timed and retried as output moves.
 */
export const resultCache = proxyLocalActivities<ResultCacheActivities>(outputMoves);

/* A batch job's writes of its own are job-table and pool writes, timed and retried as the job table's. */
export const batchJobs = proxyLocalActivities<BatchJobActivities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

/** The workflow type whose workflow id is the job id (`jobs.workflow_id = jobs.id`). */
const JOB_WORKFLOW_TYPE = 'runGeneration';

/** Where a log line was written from, as far as Temporal says. */
export interface TemporalLogOrigin {
  workflowId: string;
  runId: string;
  workflowType?: string;
  attempt?: number;
}

/**
 * The fields that tie a log line to a job: `jobId` (for a job's own workflow), `workflowId`, `runId` and
 * the activity `attempt`. Searching logs for one job id then finds its workflow and activity lines alike.
 */
export function jobLogFields({ workflowId, runId, workflowType, attempt }: TemporalLogOrigin) {
  return {
    ...(workflowType === JOB_WORKFLOW_TYPE ? { jobId: workflowId } : {}),
    workflowId,
    runId,
    ...(attempt === undefined ? {} : { attempt }),
  };
}

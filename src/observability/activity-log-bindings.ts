import { asyncLocalStorage } from '@temporalio/activity';
import { jobLogFields } from './job-log-fields.js';

/**
 * A pino `mixin`: inside an activity, every line gets the job, workflow, run and attempt it belongs to,
 * whichever logger or helper wrote it. A child logger per activity would need threading through every
 * function an activity calls; this reads Temporal's own async context at the moment of logging. Fields
 * the call passes itself win. Outside activities (the API) it adds nothing.
 */
export function activityLogBindings(): object {
  const info = asyncLocalStorage.getStore()?.info;
  if (!info?.workflowExecution) return {};
  return {
    ...jobLogFields({ ...info.workflowExecution, workflowType: info.workflowType, attempt: info.attempt }),
    activityType: info.activityType,
  };
}

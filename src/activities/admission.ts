import { admitAndWake } from '../job-changes/admission-wake.js';
import { jobChangeContextOf, type ActivityDependencies } from './dependencies.js';

export function createAdmissionActivities(deps: ActivityDependencies) {
  return {
    /** Whether the arriving job `jobId` holds one of its user's running slots, admitting it if one is free. */
    async admitWaitingJobs(jobId: string): Promise<boolean> {
      return admitAndWake(jobChangeContextOf(deps), jobId);
    },
  };
}

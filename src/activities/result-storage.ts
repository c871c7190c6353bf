import type { ActivityDependencies } from './dependencies.js';
import { resultKeyFor } from '../storage/job-object-keys.js';

export function createResultStorageActivities({ store }: ActivityDependencies) {
  return {
    /**
     * Removes the output of a job that did not succeed: one written as it was canceled, or by a worker
     * lost before it could write `succeeded`. Removing nothing is fine, so it is safe to repeat.
     */
    async discardOutputs(jobId: string): Promise<void> {
      await store.delete(resultKeyFor(jobId));
    },
  };
}

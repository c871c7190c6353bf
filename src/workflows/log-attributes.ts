import { workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

/**
 * A workflow interceptor module: workflow log lines (the SDK's own "Workflow failed" included) carry
 * the run's attempt beside the workflow and run ids they already have, as activity lines do.
 */
export const interceptors: WorkflowInterceptorsFactory = () => ({
  outbound: [
    {
      getLogAttributes: (input, next) => next({ ...input, attempt: workflowInfo().attempt }),
    },
  ],
});

import type { WorkflowStartOptions } from '@temporalio/client';
import type { Plan } from '../config/index.js';
import { JobStatus } from '../jobs/job.js';
import type { JobRow } from '../db/schema.js';
import { jobSearchAttributes } from '../workflows/search-attributes.js';

/** What every run of a job's workflow starts with, its first and an operator's retry alike. */
export type JobWorkflowOptions = Pick<
  WorkflowStartOptions,
  'taskQueue' | 'workflowId' | 'priority' | 'typedSearchAttributes' | 'staticSummary'
>;

/** One line for the Temporal UI's list and the job's page. Never the prompt: operators see this. */
export function jobSummary(row: Pick<JobRow, 'kind' | 'provider' | 'model' | 'size' | 'user_id'>): string {
  const parts = [row.kind, `${row.provider}/${row.model}`, row.size, `user ${row.user_id}`];
  return parts.filter((part) => part !== null).join(' · ');
}

export function jobWorkflowOptions(row: JobRow, plan: Plan, taskQueue: string): JobWorkflowOptions {
  return {
    taskQueue,
    workflowId: row.workflow_id,
    // Inherited by the job's activities: a provider's backlog is dispatched fairly across users.
    priority: { fairnessKey: row.user_id, fairnessWeight: plan.weight },
    typedSearchAttributes: jobSearchAttributes({
      userId: row.user_id,
      provider: row.provider,
      status: JobStatus.queued,
    }),
    staticSummary: jobSummary(row),
  };
}

import { defineQuery } from '@temporalio/workflow';
import type { GenerationRequest, JobStatus } from '../jobs/job.js';

/** Input of the `generateImage` workflow. Everything it needs is here: workflows read no environment. */
export interface GenerateImageInput {
  jobId: string;
  request: GenerationRequest;
  /** Fixed per job so that a retried provider call asks for the same image. */
  seed: number;
  providerTimeouts: { heartbeatSeconds: number; attemptSeconds: number };
}

/** Where the workflow stands; answers before the first job-table write and in the Temporal UI. */
export const jobStatusQuery = defineQuery<JobStatus>('status');

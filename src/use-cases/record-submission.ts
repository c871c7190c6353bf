import type { Logger } from '../logger.js';
import { countSubmitted } from '../observability/job-metrics.js';
import type { Submission } from './submit-generation.js';

/**
 * Counts and logs an accepted submission. The line names the job, its workflow, the run this submission
 * started (none for a replay) and attempt (0 until its first provider call), and the prompt's hash, never
 * the prompt. A replay counts nothing new.
 */
export function recordSubmission(logger: Logger, { row, replayed, runId }: Submission): void {
  if (!replayed) countSubmitted(row);
  logger.info(
    {
      jobId: row.id,
      workflowId: row.workflow_id,
      runId,
      attempt: row.attempts,
      provider: row.provider,
      model: row.model,
      promptSha256: row.prompt_sha256,
      replayed,
    },
    'job submitted',
  );
}

/** Where a job's provider output waits until the job is storing: one key per job, so a retry overwrites. */
export function stagingKeyFor(jobId: string): string {
  return `staging/${jobId}`;
}

/** Where a succeeded job's result is kept, and served from. */
export function resultKeyFor(jobId: string): string {
  return `results/${jobId}`;
}

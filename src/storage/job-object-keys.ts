/**
 * Where a job's output is written as its provider call answers, and a succeeded job's result served
 * from: one key per job, written once (see ObjectStore).
 */
export function resultKeyFor(jobId: string): string {
  return `results/${jobId}`;
}

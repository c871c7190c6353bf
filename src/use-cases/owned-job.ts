import type { Kysely } from 'kysely';
import { findJob } from '../db/job-repository.js';
import type { Database, JobRow } from '../db/schema.js';
import { isJobId } from '../jobs/job-identity.js';

/**
 * The caller's job with this id, if any. Another user's job is answered exactly as a missing one, so
 * that ids cannot be probed. An id of another shape names no job and is not looked up: Postgres would
 * refuse one with a NUL byte as an error, not as a miss.
 */
export async function findOwnedJob(
  db: Kysely<Database>,
  userId: string,
  jobId: string,
): Promise<JobRow | undefined> {
  if (!isJobId(jobId)) return undefined;
  const row = await findJob(db, jobId);
  return row?.user_id === userId ? row : undefined;
}

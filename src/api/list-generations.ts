import type { Kysely } from 'kysely';
import { z } from 'zod';
import { listJobs, toJob } from '../db/job-repository.js';
import type { Database } from '../db/schema.js';
import { JobStatus, type Job } from '../jobs/job.js';
import { ApiError } from './api-error.js';
import { validationError } from './invalid-request.js';
import { findOwnedJob } from './owned-job.js';

export const listQuerySchema = z
  .object({
    status: z.enum(Object.values(JobStatus) as [JobStatus, ...JobStatus[]]).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export interface JobPage {
  data: Job[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** Cursors are opaque to clients: the id of the last job of the page, encoded. */
function encodeCursor(jobId: string): string {
  return Buffer.from(jobId).toString('base64url');
}

async function decodeCursor(db: Kysely<Database>, userId: string, cursor: string): Promise<string> {
  const jobId = Buffer.from(cursor, 'base64url').toString();
  if (!(await findOwnedJob(db, userId, jobId))) throw new ApiError('invalid_cursor', 'cursor is not valid');
  return jobId;
}

/** One page of the caller's jobs, newest first. */
export async function listGenerations(
  db: Kysely<Database>,
  userId: string,
  query: unknown,
): Promise<JobPage> {
  const parsed = listQuerySchema.safeParse(query);
  if (!parsed.success) throw validationError(parsed.error, '(query)');
  const { status, limit, cursor } = parsed.data;
  const afterId = cursor === undefined ? undefined : await decodeCursor(db, userId, cursor);
  // One row more than asked tells whether another page exists without a count query.
  const rows = await listJobs(db, userId, { status, limit: limit + 1, afterId });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { data: page.map(toJob), nextCursor: rows.length > limit && last ? encodeCursor(last.id) : null };
}

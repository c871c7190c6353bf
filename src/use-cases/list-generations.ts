import type { Kysely } from 'kysely';
import { listJobs, toJob } from '../db/job-repository.js';
import { withCredits } from './job-credits.js';
import type { Database } from '../db/schema.js';
import type { Job, JobKind, JobStatus } from '../jobs/job.js';
import { findOwnedJob } from './owned-job.js';

/** Which of the caller's jobs to list, and from where. */
export interface ListQuery {
  status?: JobStatus;
  kind?: JobKind;
  limit: number;
  /** A page's `nextCursor`, for the page after it. */
  cursor?: string;
}

export interface JobPage {
  data: Job[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** A cursor this caller was never given. */
export type ListRefusal = { kind: 'refused'; reason: 'invalid_cursor' };

export type ListOutcome = { kind: 'page'; page: JobPage } | ListRefusal;

/** Cursors are opaque to clients: the id of the last job of the page, encoded. */
function encodeCursor(jobId: string): string {
  return Buffer.from(jobId).toString('base64url');
}

/** The job id a cursor stands for, if it names one of the caller's jobs. */
async function decodeCursor(
  db: Kysely<Database>,
  userId: string,
  cursor: string,
): Promise<string | undefined> {
  const jobId = Buffer.from(cursor, 'base64url').toString();
  return (await findOwnedJob(db, userId, jobId)) ? jobId : undefined;
}

/** One page of the caller's jobs, newest first. */
export async function listGenerations(
  db: Kysely<Database>,
  userId: string,
  { status, kind, limit, cursor }: ListQuery,
): Promise<ListOutcome> {
  const afterId = cursor === undefined ? undefined : await decodeCursor(db, userId, cursor);
  if (cursor !== undefined && afterId === undefined) return { kind: 'refused', reason: 'invalid_cursor' };
  // One row more than asked tells whether another page exists without a count query.
  const rows = await listJobs(db, userId, { status, kind, limit: limit + 1, afterId });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const nextCursor = rows.length > limit && last ? encodeCursor(last.id) : null;
  return { kind: 'page', page: { data: await withCredits(db, page.map(toJob)), nextCursor } };
}

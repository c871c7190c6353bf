import { sql, type Kysely, type Transaction } from 'kysely';
import {
  CacheOutcome,
  FailureCode,
  JobStatus,
  UNFINISHED_STATUSES,
  type JobFailureCode,
} from '../jobs/job.js';
import type { Database } from './schema.js';

/** Where a request's result is looked up: its cache scope and its `cacheFingerprint`. */
export interface CacheEntryKey {
  scope: string;
  fingerprint: string;
}

/**
 * What a job that may be served by an identical one does: call the provider itself (`lead`), wait on
 * the identical job in flight (`join`; `sourceStarted` once that job left the queue), or take the
 * stored result of the one that succeeded (`reuse`, as `outcome`: `joined` if it had joined that job),
 * or fail as the job it joined did when that was the request's own fault (`fail`).
 */
export type CacheClaim =
  | { kind: 'lead' }
  /** The job it joined failed for the request's own fault: an identical request fails the same way. */
  | { kind: 'fail'; sourceJobId: string; code: JobFailureCode; message: string }
  | { kind: 'join'; sourceJobId: string; sourceStarted: boolean }
  | { kind: 'reuse'; sourceJobId: string; outcome: CacheOutcome };

type Trx = Transaction<Database>;

/**
 * Failures an identical request would meet again: the request's own faults, not the provider's. A job
 * that joined one that failed so shares its failure rather than pay for the same refusal.
 */
const REQUEST_FAULTS: readonly JobFailureCode[] = [FailureCode.invalidRequest, FailureCode.contentPolicy];

/** The entry's job, or `jobId`'s claim on a new entry; locked, so claims of one request queue. */
async function entryJobId(trx: Trx, key: CacheEntryKey, jobId: string): Promise<string | undefined> {
  const inserted = await trx
    .insertInto('generation_results')
    .values({ ...key, job_id: jobId })
    .onConflict((oc) => oc.doNothing())
    .returning('job_id')
    .executeTakeFirst();
  if (inserted) return undefined;
  const entry = await trx
    .selectFrom('generation_results')
    .select('job_id')
    .where('scope', '=', key.scope)
    .where('fingerprint', '=', key.fingerprint)
    .forUpdate()
    .executeTakeFirstOrThrow();
  return entry.job_id === jobId ? undefined : entry.job_id;
}

/**
 * The entry's job as a claim sees it. Read under a shared lock: the write that ends it waits for this
 * claim's commit, so the wake-up that follows that write finds a job that joined it here.
 */
async function sourceOf(trx: Trx, sourceJobId: string, maxAgeSeconds: number) {
  return trx
    .selectFrom('jobs')
    .select(['status', 'purged_at', 'storage_key', 'failure_code', 'failure_message'])
    .select(sql<boolean>`completed_at >= now() - make_interval(secs => ${maxAgeSeconds})`.as('fresh'))
    .where('id', '=', sourceJobId)
    .forShare()
    .executeTakeFirst();
}

/**
 * Records whom the job follows (none: it leads). A job that joins gives back a running slot admission
 * may have handed it before its claim (it calls no provider), and admission hands it none while it
 * follows; the caller passes the slot on.
 */
async function follow(trx: Trx, jobId: string, sourceJobId: string | null): Promise<void> {
  const joined = sourceJobId === null ? {} : { admitted_at: null };
  await trx
    .updateTable('jobs')
    .set({
      cache_outcome: sourceJobId === null ? null : CacheOutcome.joined,
      cache_source_job_id: sourceJobId,
      ...joined,
    })
    .where('id', '=', jobId)
    .where('status', 'in', UNFINISHED_STATUSES)
    .execute();
}

/** `jobId` becomes the entry's job: it calls the provider, and identical requests join it. */
async function takeOver(trx: Trx, key: CacheEntryKey, jobId: string): Promise<CacheClaim> {
  await trx
    .updateTable('generation_results')
    .set({ job_id: jobId, claimed_at: sql<Date>`now()` })
    .where('scope', '=', key.scope)
    .where('fingerprint', '=', key.fingerprint)
    .execute();
  await follow(trx, jobId, null);
  return { kind: 'lead' };
}

/**
 * Decides, in one transaction, how `jobId` is served (see CacheClaim). A job that ended without a result
 * (failed, canceled, expired), a result past `maxAgeSeconds` or purged, or a job gone leave the entry to
 * the claimant. A job that joined is served by its source's result whatever its age. Safe to repeat at
 * any later point of the job: the entry a job holds stays its own, and a job that ended is not written.
 */
export async function claimGeneration(
  db: Kysely<Database>,
  jobId: string,
  key: CacheEntryKey,
  maxAgeSeconds: number,
): Promise<CacheClaim> {
  return db.transaction().execute(async (trx) => {
    const sourceJobId = await entryJobId(trx, key, jobId);
    if (sourceJobId === undefined) return { kind: 'lead' };
    const source = await sourceOf(trx, sourceJobId, maxAgeSeconds);
    if (source && UNFINISHED_STATUSES.includes(source.status)) {
      await follow(trx, jobId, sourceJobId);
      return { kind: 'join', sourceJobId, sourceStarted: source.status !== JobStatus.queued };
    }
    const me = await trx
      .selectFrom('jobs')
      .select('cache_source_job_id')
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    const joined = me.cache_source_job_id === sourceJobId;
    if (source?.status === JobStatus.succeeded && !source.purged_at && source.storage_key) {
      if (joined || source.fresh) {
        return { kind: 'reuse', sourceJobId, outcome: joined ? CacheOutcome.joined : CacheOutcome.reused };
      }
    }
    if (joined && source?.failure_code && REQUEST_FAULTS.includes(source.failure_code)) {
      const { failure_code: code, failure_message: message } = source;
      return { kind: 'fail', sourceJobId, code, message: message ?? code };
    }
    return takeOver(trx, key, jobId);
  });
}

/**
 * `jobId` takes the entry from `sourceJobId`, whose result was found gone (purged meanwhile); says
 * whether it did (no other job took it first).
 */
export async function takeOverFrom(
  db: Kysely<Database>,
  key: CacheEntryKey,
  sourceJobId: string,
  jobId: string,
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const taken = await trx
      .updateTable('generation_results')
      .set({ job_id: jobId, claimed_at: sql<Date>`now()` })
      .where('scope', '=', key.scope)
      .where('fingerprint', '=', key.fingerprint)
      .where('job_id', '=', sourceJobId)
      .executeTakeFirst();
    await follow(trx, jobId, null);
    return taken.numUpdatedRows > 0n;
  });
}

/** The workflows of unfinished jobs that joined `jobId`'s call: its end wakes them. */
export async function followersOf(db: Kysely<Database>, jobId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('jobs')
    .select('workflow_id')
    .where('cache_source_job_id', '=', jobId)
    .where('cache_outcome', '=', CacheOutcome.joined)
    .where('status', 'in', UNFINISHED_STATUSES)
    .execute();
  return rows.map((row) => row.workflow_id);
}

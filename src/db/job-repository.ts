import { sql, type Kysely, type Transaction } from 'kysely';
import {
  JobStatus,
  UNFINISHED_STATUSES,
  type Job,
  type JobKind,
  type JobWaiting,
  type ServedBy,
  type ServiceTier,
} from '../jobs/job.js';
import { ENTERED_FROM, isAtOrPast } from '../jobs/transitions.js';
import { JOB_EVENTS_CHANNEL, encodeJobEvent, type JobEvent, type JobEventType } from '../events/job-event.js';
import { currentTraceId } from '../observability/trace-context.js';
import { closeReservationParts, closesReservation, reserveCreditsAgain } from './credit-repository.js';
import type { Database, JobRow } from './schema.js';
import { webhookDeliveryPart } from './webhook-repository.js';

type Db = Kysely<Database> | Transaction<Database>;

function iso(value: Date | null): string | null {
  return value ? value.toISOString() : null;
}

/** The one place a row becomes the public job shape. */
export function toJob(row: JobRow): Job {
  return {
    id: row.id,
    status: row.status,
    kind: row.kind,
    provider: row.provider,
    model: row.model,
    size: row.size,
    promptSha256: row.prompt_sha256,
    progress: row.progress,
    attempts: row.attempts,
    version: row.version,
    createdAt: row.created_at.toISOString(),
    startedAt: iso(row.started_at),
    completedAt: iso(row.completed_at),
    purgedAt: iso(row.purged_at),
    failure: row.failure_code ? { code: row.failure_code, message: row.failure_message ?? '' } : null,
    result:
      row.result_sha256 && row.content_type && row.byte_size !== null
        ? { contentType: row.content_type, byteSize: row.byte_size, sha256: row.result_sha256 }
        : null,
    waiting: row.waiting,
    servedBy: row.served_by ?? {
      provider: row.provider,
      model: row.model,
      size: row.size,
      entry: 0,
      switched: null,
    },
    cacheOutcome: row.cache_outcome,
    usage: row.usage,
    tier: row.tier,
  };
}

export async function findJob(db: Db, id: string): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Columns a change writes; `version` and `updated_at` every change moves itself. */
export type JobPatch = Partial<Omit<JobRow, 'id' | 'version' | 'updated_at' | 'webhook'>>;

/**
 * What a change writes, given the row it changes (a call counts an attempt, from the row's count);
 * undefined when the row says nothing is to be written.
 */
type PatchOf = JobPatch | ((row: JobRow) => JobPatch | undefined);

/** A change's event type, by what it is about: a progress write also ends a wait in the provider's queue. */
function eventTypeOf(patch: JobPatch): JobEventType {
  if (patch.status !== undefined) return 'status';
  if (patch.served_by !== undefined) return 'provider_switched';
  if (patch.tier !== undefined) return 'tier_changed';
  return patch.progress === undefined ? 'waiting' : 'progress';
}

/**
 * The change as one statement, so one round trip and one transaction: the row written only if it is
 * still at `before.version` and in an allowed status, its next event recorded and announced on the
 * events channel, and with it, if asked for, the webhook delivery and the credits' close. The event
 * is the row as `toJob` shows it, computed from `before`: the version check makes it the row written.
 */
async function writeChange(
  db: Db,
  before: JobRow,
  allowedStatuses: readonly JobStatus[],
  patch: JobPatch,
  settleAt?: number,
): Promise<JobRow | undefined> {
  const after: JobRow = { ...before, ...patch, version: before.version + 1, updated_at: new Date() };
  const event: JobEvent = { seq: after.version, type: eventTypeOf(patch), job: toJob(after) };
  const assignments = Object.entries({ ...patch, version: after.version, updated_at: after.updated_at }).map(
    ([column, value]) => sql`${sql.ref(column)} = ${value}`,
  );
  const parts = [
    sql`updated as (
      update jobs set ${sql.join(assignments)}
      where id = ${before.id} and version = ${before.version} and status = any(${sql.val([...allowedStatuses])})
      returning *)`,
    sql`recorded as (
      insert into job_events (job_id, seq, type, data, trace_id)
      select id, version, ${event.type}, ${JSON.stringify(event.job)}::jsonb, ${currentTraceId() ?? null}::text
      from updated)`,
    ...(closesReservation(after.status) && patch.status !== undefined
      ? closeReservationParts(before.id, after.status, settleAt)
      : []),
    ...[webhookDeliveryPart(after, event)].filter((part) => part !== undefined),
  ];
  const { rows } = await sql<JobRow & { notified?: unknown }>`
    with ${sql.join(parts)}
    select updated.*, pg_notify(${JOB_EVENTS_CHANNEL}, ${encodeJobEvent(event)}) as notified from updated
  `.execute(db);
  const [row] = rows;
  if (row) delete row.notified;
  return row;
}

/**
 * Writes a change to a job in one of `allowedStatuses`, with its event (see writeChange). A row that
 * changed since it was read is read again; `known` spares the first read. Returns the row written, or
 * none, with the row as it was last read.
 */
async function updateAndPublish(
  db: Db,
  id: string,
  allowedStatuses: readonly JobStatus[],
  patchOf: PatchOf,
  known?: JobRow,
  settleAt?: number,
): Promise<{ written?: JobRow; current?: JobRow }> {
  let current = known ?? (await findJob(db, id));
  while (current && allowedStatuses.includes(current.status)) {
    const patch = typeof patchOf === 'function' ? patchOf(current) : patchOf;
    if (!patch) break;
    const written = await writeChange(db, current, allowedStatuses, patch, settleAt);
    if (written) return { written, current: written };
    current = await findJob(db, id);
  }
  return { current };
}

export class IllegalTransitionError extends Error {
  override readonly name = 'IllegalTransitionError';

  constructor(
    readonly jobId: string,
    readonly from: JobStatus | undefined,
    readonly to: JobStatus,
  ) {
    super(`job ${jobId}: illegal transition ${from ?? '(no row)'} → ${to}`);
  }
}

/**
 * Moves a job to `to` if the state machine allows it from the current status. A job already at or past
 * `to` (ended, even another way) is returned as it is: the write is a repeat, which any activity may
 * be, at any later point of the job. Anything else illegal throws. A
 * terminal status settles or refunds the job's credits in the same transaction, so no crash can record
 * the end of a job without its credits, or the other way round; `succeeded` settles at `settleAt`
 * credits, when the job was served by a cheaper provider than its reservation covered.
 */
export async function transitionJob(
  db: Kysely<Database>,
  id: string,
  to: JobStatus,
  patch: JobPatch = {},
  known?: JobRow,
  settleAt?: number,
): Promise<JobRow> {
  const { written, current } = await updateAndPublish(
    db,
    id,
    ENTERED_FROM[to],
    // A job that moves on waits no more; one that waits again says so after.
    { ...patch, status: to, waiting: null },
    known,
    settleAt,
  );
  if (written) return written;
  if (current && isAtOrPast(current.status, to)) return current;
  throw new IllegalTransitionError(id, current?.status, to);
}

/**
 * Puts a failed job back in the queue for another run under its id, its cost reserved again in the
 * same transaction. What the failed run left is cleared; `attempts` and the events keep counting.
 */
export async function requeueFailedJob(db: Kysely<Database>, id: string): Promise<JobRow> {
  const reset: JobPatch = {
    status: JobStatus.queued,
    progress: 0,
    completed_at: null,
    failure_code: null,
    failure_message: null,
    provider_task_id: null,
    admitted_at: null,
    // The next run's workflow is not running yet either: if its start is lost, the orphan sweep ends it.
    workflow_seen_at: null,
    waiting: null,
    // The next run starts again from the provider the job was submitted for.
    served_by: null,
    // The next run looks for an identical job afresh, if it may.
    cache_outcome: null,
    cache_source_job_id: null,
    usage: null,
  };
  return db.transaction().execute(async (trx) => {
    const { written, current } = await updateAndPublish(trx, id, ENTERED_FROM.queued, reset);
    if (!written) throw new IllegalTransitionError(id, current?.status, JobStatus.queued);
    await reserveCreditsAgain(trx, id);
    // A batch job's next run pools its line afresh: the last run's outcome is not this one's.
    await trx.deleteFrom('batch_members').where('job_id', '=', id).execute();
    return written;
  });
}

/**
 * Marks the start of a provider call: the job enters (or stays) `running`. A new call counts as an
 * attempt; resuming a task the provider already accepted does not. Nothing is written, and undefined
 * returned, for a job already past its call (`storing`, `succeeded`): an earlier attempt kept an output.
 */
export async function startProviderCall(
  db: Kysely<Database>,
  id: string,
  isNewCall: boolean,
): Promise<JobRow | undefined> {
  const { written, current } = await updateAndPublish(
    db,
    id,
    [JobStatus.queued, JobStatus.running],
    (row) => ({
      status: JobStatus.running,
      started_at: row.started_at ?? new Date(),
      attempts: isNewCall ? row.attempts + 1 : row.attempts,
      progress: 0,
      waiting: null,
    }),
  );
  if (written) return written;
  if (current?.status === JobStatus.storing || current?.status === JobStatus.succeeded) return undefined;
  throw new IllegalTransitionError(id, current?.status, JobStatus.running);
}

/**
 * Says why a job that is not being worked on waits, with an event. A wait the row already tells (same
 * reason, same call) is not written again: a repeated write, or the same wait looked at again, keeps
 * its `since` and makes no event.
 */
export async function recordWaiting(
  db: Kysely<Database>,
  id: string,
  waiting: JobWaiting,
): Promise<JobRow | undefined> {
  const { written } = await updateAndPublish(db, id, [JobStatus.queued, JobStatus.running], (row) =>
    row.waiting?.reason === waiting.reason &&
    row.waiting.attempt === waiting.attempt &&
    row.waiting.position === waiting.position
      ? undefined
      : { waiting },
  );
  return written;
}

/**
 * A batch job the batch tier could not serve in time moves to the standard tier (or, retried, back to
 * the batch tier), with a `tier_changed` event; it waits no more for its batch. A job already there is
 * not written again.
 */
export async function recordTierChange(
  db: Kysely<Database>,
  id: string,
  tier: ServiceTier,
): Promise<JobRow | undefined> {
  const { written } = await updateAndPublish(db, id, [JobStatus.queued, JobStatus.running], (row) =>
    row.tier === tier ? undefined : { tier, waiting: null },
  );
  return written;
}

/**
 * Moves a job on to entry `servedBy.entry` of its fallback chain, with a `provider_switched` event; it
 * waits no more for the entry it leaves, and has no task there to resume. A job already at that entry
 * or past it is not written again, so a repeated write makes no second event.
 */
export async function recordProviderSwitch(
  db: Kysely<Database>,
  id: string,
  servedBy: ServedBy,
): Promise<JobRow | undefined> {
  const { written } = await updateAndPublish(db, id, [JobStatus.queued, JobStatus.running], (row) =>
    (row.served_by?.entry ?? 0) >= servedBy.entry
      ? undefined
      : { served_by: servedBy, waiting: null, provider_task_id: null },
  );
  return written;
}

/** Remembers (or forgets, with null) the provider's task id of the call in flight. */
export async function recordProviderTask(
  db: Kysely<Database>,
  id: string,
  taskId: string | null,
): Promise<void> {
  await db.updateTable('jobs').set({ provider_task_id: taskId }).where('id', '=', id).execute();
}

/** Records progress on a job that is still running; its row, or nothing once it is not. */
export async function updateProgress(
  db: Kysely<Database>,
  id: string,
  progress: number,
): Promise<JobRow | undefined> {
  // A task that makes progress has left the provider's queue.
  const patch = (row: JobRow): JobPatch => (row.waiting ? { progress, waiting: null } : { progress });
  return (await updateAndPublish(db, id, [JobStatus.running], patch)).written;
}

/**
 * A user's jobs, newest first, after the job `afterId` in that order. Keyset, not OFFSET: a page costs
 * the same at any depth, and jobs created meanwhile do not shift later pages. The cursor row's own
 * timestamp is read in SQL, so microsecond precision is never lost through a JavaScript Date.
 */
export async function listJobs(
  db: Kysely<Database>,
  userId: string,
  options: { status?: JobStatus; kind?: JobKind; limit: number; afterId?: string },
): Promise<JobRow[]> {
  let query = db.selectFrom('jobs').selectAll().where('user_id', '=', userId);
  if (options.status) query = query.where('status', '=', options.status);
  if (options.kind) query = query.where('kind', '=', options.kind);
  if (options.afterId) {
    query = query.where(
      sql<boolean>`(created_at, id) < (select c.created_at, c.id from jobs c where c.id = ${options.afterId})`,
    );
  }
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(options.limit).execute();
}

/** A user's unfinished jobs: waiting (`queued`), and being worked on (`running` or `storing`). */
export async function countUnfinishedJobs(
  db: Kysely<Database>,
  userId: string,
): Promise<{ queued: number; running: number }> {
  const rows = await db
    .selectFrom('jobs')
    .select(['status', (eb) => eb.fn.countAll<string>().as('count')])
    .where('user_id', '=', userId)
    .where('status', 'in', UNFINISHED_STATUSES)
    .groupBy('status')
    .execute();
  const count = (status: JobStatus) => Number(rows.find((row) => row.status === status)?.count ?? 0);
  return { queued: count(JobStatus.queued), running: count(JobStatus.running) + count(JobStatus.storing) };
}

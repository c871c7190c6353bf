import { sql, type Kysely, type Transaction } from 'kysely';
import { JOB_EVENTS_CHANNEL, encodeJobEvent, type JobEvent } from '../events/job-event.js';
import type { Job } from '../jobs/job.js';
import type { Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** Events read back per query; a reader that gets this many asks again. */
const PAGE = 500;

/**
 * Records the event and announces it, inside the transaction that made the change: it is committed, and
 * heard, exactly when the change is. One statement, so one round trip: every status change makes one.
 */
export async function appendJobEvent(trx: Transaction<Database>, event: JobEvent): Promise<void> {
  await trx
    .with('recorded', (db) =>
      db
        .insertInto('job_events')
        .values({ job_id: event.job.id, seq: event.seq, type: event.type, data: JSON.stringify(event.job) })
        .returning('seq'),
    )
    .selectFrom('recorded')
    .select(sql`pg_notify(${JOB_EVENTS_CHANNEL}, ${encodeJobEvent(event)})`.as('notified'))
    .execute();
}

/** A job's events after `since`, in order. */
export async function jobEventsAfter(db: Db, jobId: string, since: number): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for (;;) {
    const rows = await db
      .selectFrom('job_events')
      .select(['seq', 'type', 'data'])
      .where('job_id', '=', jobId)
      .where('seq', '>', events.at(-1)?.seq ?? since)
      .orderBy('seq')
      .limit(PAGE)
      .execute();
    events.push(...rows.map((row) => ({ seq: row.seq, type: row.type, job: row.data as Job })));
    if (rows.length < PAGE) return events;
  }
}

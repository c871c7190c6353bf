import type { Kysely, Transaction } from 'kysely';
import type { JobEvent } from '../events/job-event.js';
import type { Job } from '../jobs/job.js';
import type { Database, JobRow } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** Events read back per query; a reader that gets this many asks again. */
const PAGE = 500;

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

/**
 * The job's row if the job has no events at all (retention removed them), in one statement, so that
 * a write committing meanwhile cannot make a job with events look like one without.
 */
export async function findJobWithoutEvents(db: Db, jobId: string): Promise<JobRow | undefined> {
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', jobId)
    .where((eb) => eb.not(eb.exists(eb.selectFrom('job_events').select('seq').where('job_id', '=', jobId))))
    .executeTakeFirst();
}

/**
 * Notes the trace an event was written in, for a statement that could not write it with the event
 * (`submit_job`, whose first event predates the column). A trace already noted stays.
 */
export async function recordEventTrace(db: Db, jobId: string, seq: number, traceId: string): Promise<void> {
  await db
    .updateTable('job_events')
    .set({ trace_id: traceId })
    .where('job_id', '=', jobId)
    .where('seq', '=', seq)
    .where('trace_id', 'is', null)
    .execute();
}

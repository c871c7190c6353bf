import { sql, type Kysely } from 'kysely';
import { JOB_EVENTS_CHANNEL } from '../events/job-event.js';
import type { StreamedText } from '../events/text-stream.js';
import type { Database } from './schema.js';

/**
 * Makes `attempt` the job's streaming attempt and announces the reset, unless a newer one already
 * started (a worker presumed dead may still be streaming an old one). Older attempts' pieces go.
 */
export async function beginTextAttempt(db: Kysely<Database>, jobId: string, attempt: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ attempt: number }>`
      insert into job_text_streams (job_id, attempt) values (${jobId}, ${attempt})
      on conflict (job_id) do update set attempt = excluded.attempt, started_at = now()
        where job_text_streams.attempt < excluded.attempt
      returning attempt`.execute(trx);
    if (rows.length === 0) return;
    await trx
      .deleteFrom('job_text_pieces')
      .where('job_id', '=', jobId)
      .where('attempt', '<', attempt)
      .execute();
    const reset = JSON.stringify({ type: 'reset', jobId, attempt });
    await sql`select pg_notify(${JOB_EVENTS_CHANNEL}, ${reset})`.execute(trx);
  });
}

/**
 * Records `delta` at `offset` of the attempt's text and announces it, in one statement; nothing is written
 * once a newer attempt has started. NOTIFY payloads stay under 8000 bytes: keep `delta` short.
 */
export async function appendText(
  db: Kysely<Database>,
  jobId: string,
  piece: { attempt: number; offset: number; delta: string },
): Promise<void> {
  const { attempt, offset, delta } = piece;
  const payload = JSON.stringify({ type: 'text', jobId, attempt, offset, delta });
  await sql`
    with written as (
      insert into job_text_pieces (job_id, attempt, "offset", text)
      select ${jobId}, ${attempt}, ${offset}, ${delta}
      where exists (select 1 from job_text_streams where job_id = ${jobId} and attempt = ${attempt})
      returning 1)
    select pg_notify(${JOB_EVENTS_CHANNEL}, ${payload}) from written`.execute(db);
}

/** The text streamed so far by the job's latest attempt; undefined before its first call. */
export async function readStreamedText(
  db: Kysely<Database>,
  jobId: string,
): Promise<StreamedText | undefined> {
  const { rows } = await sql<StreamedText>`
    select s.attempt, coalesce(string_agg(p.text, '' order by p."offset"), '') as text
    from job_text_streams s
    left join job_text_pieces p on p.job_id = s.job_id and p.attempt = s.attempt
    where s.job_id = ${jobId}
    group by s.attempt`.execute(db);
  return rows[0];
}

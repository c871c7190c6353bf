import { sql, type Kysely } from 'kysely';

/**
 * `admit_waiting_jobs`: gives a user's free running slots to their oldest waiting jobs and tells
 * whether the asking job holds one, in one statement. As four statements in a transaction it took six
 * round trips, twice per job, with the user's row locked throughout.
 *
 * `p_max_running` maps plan names to their `maxRunning`; a plan not in it (removed from the
 * configuration) gets `p_default_max_running`. A job holds a slot from admission until it leaves
 * `p_unfinished_statuses`. Returns whether `p_job_id` holds a slot, and the
 * workflows of the other jobs this call admitted: the ones to wake.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function admit_waiting_jobs(
      p_job_id text,
      p_max_running jsonb,
      p_default_max_running integer,
      p_unfinished_statuses text[],
      out admitted boolean,
      out to_wake text[]
    )
    language plpgsql as $$
    declare
      v_user_id text;
      v_plan text;
      v_free integer;
    begin
      -- Concurrent admissions of one user run one at a time, so maxRunning is never exceeded. Not FOR
      -- UPDATE: that would also block the foreign-key checks of concurrent submissions.
      select id, plan into strict v_user_id, v_plan from users
        where id = (select user_id from jobs where id = p_job_id)
        for no key update;

      -- A statement of its own, after the lock: its snapshot sees what the previous holder committed.
      select coalesce((p_max_running ->> v_plan)::integer, p_default_max_running) - count(*)
        into v_free from jobs
        where user_id = v_user_id
          and status = any(p_unfinished_statuses)
          and admitted_at is not null;

      to_wake := '{}';
      if v_free > 0 then
        with picked as (
          update jobs set admitted_at = now()
            where id in (
              select id from jobs
                where user_id = v_user_id and status = 'queued' and admitted_at is null
                order by created_at, id
                limit v_free
                -- A job locked now is ending (canceled, expired) and holds its row before the
                -- user's: waiting for it here would deadlock with its credit refund.
                for update skip locked
            )
            returning id, workflow_id
        )
        select coalesce(array_agg(workflow_id) filter (where id <> p_job_id), '{}') into to_wake
          from picked;
      end if;

      select admitted_at is not null into admitted from jobs where id = p_job_id;
      admitted := coalesce(admitted, false);
    end
    $$
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function admit_waiting_jobs`.execute(db);
}

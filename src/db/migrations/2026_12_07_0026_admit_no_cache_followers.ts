import { sql, type Kysely, type RawBuilder } from 'kysely';

/**
 * `admit_waiting_jobs` gives no running slot to a job that joined an identical job's call (the result
 * cache: `cache_source_job_id` set while it is queued): it calls no provider, and a slot held by it
 * could be the one the job it waits on needs. Otherwise as 0020 left it.
 */
async function createAdmission(db: Kysely<unknown>, pickable: RawBuilder<unknown>): Promise<void> {
  await sql`
    create or replace function admit_waiting_jobs(
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
      select id, plan into strict v_user_id, v_plan from users
        where id = (select user_id from jobs where id = p_job_id)
        for no key update;

      update jobs set workflow_seen_at = now()
        where id = p_job_id and status = 'queued' and workflow_seen_at is null;

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
                where user_id = v_user_id and status = 'queued' and admitted_at is null and ${pickable}
                order by created_at, id
                limit v_free
                for update skip locked
            )
            returning id, workflow_id, workflow_seen_at
        )
        select coalesce(array_agg(workflow_id) filter (where id <> p_job_id and workflow_seen_at is not null), '{}')
          into to_wake
          from picked;
      end if;

      select admitted_at is not null or status <> 'queued' into admitted from jobs where id = p_job_id;
      admitted := coalesce(admitted, false);
    end
    $$
  `.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await createAdmission(db, sql`cache_source_job_id is null`);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await createAdmission(db, sql`true`);
}

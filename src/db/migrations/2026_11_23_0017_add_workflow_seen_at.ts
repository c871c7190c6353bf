import { sql, type Kysely } from 'kysely';
import { up as createPreviousAdmission } from './2026_11_23_0015_create_admit_waiting_jobs.js';

/**
 * `workflow_seen_at`: when the job's workflow first asked for admission, its first act. A row still
 * `queued` without it long after submission may have no workflow (Temporal away at submit, the API
 * killed before the start); the orphan sweep looks only at those, through a partial index, so a long
 * backlog of waiting jobs costs it nothing.
 *
 * `admit_waiting_jobs` now records that for a queued job, in the round trip it already is, and says a
 * job that is no longer queued (ended while its workflow was not yet running) needs no slot: its
 * workflow goes on to find it ended instead of waiting for a slot forever.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column workflow_seen_at timestamptz`.execute(db);
  await sql`
    create index jobs_queued_unseen on jobs (created_at)
      where status = 'queued' and workflow_seen_at is null
  `.execute(db);
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

      -- Only a waiting job's own request counts: the write that ends a job also calls this, for its
      -- user's next jobs.
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
                where user_id = v_user_id and status = 'queued' and admitted_at is null
                order by created_at, id
                limit v_free
                for update skip locked
            )
            returning id, workflow_id
        )
        select coalesce(array_agg(workflow_id) filter (where id <> p_job_id), '{}') into to_wake
          from picked;
      end if;

      select admitted_at is not null or status <> 'queued' into admitted from jobs where id = p_job_id;
      admitted := coalesce(admitted, false);
    end
    $$
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function admit_waiting_jobs`.execute(db);
  await createPreviousAdmission(db);
  await sql`drop index jobs_queued_unseen`.execute(db);
  await sql`alter table jobs drop column workflow_seen_at`.execute(db);
}

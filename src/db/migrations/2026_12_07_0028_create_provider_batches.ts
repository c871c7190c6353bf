import { sql, type Kysely } from 'kysely';

const SUBMIT_JOB =
  'submit_job(text, double precision, double precision, jsonb, integer, text, text, text, jsonb)';
const ADMIT_WAITING_JOBS = 'admit_waiting_jobs(text, jsonb, integer, text[])';

/**
 * Rewrites a function in place, one piece of its text for another: a one-line change to a long
 * function, without a second copy of it here. Refuses when the piece is not found, so that a later
 * change to the function cannot make this one silently do nothing.
 */
async function editFunction(db: Kysely<unknown>, signature: string, from: string, to: string): Promise<void> {
  await sql`
    do $$
    declare
      v_old text := pg_get_functiondef(${sql.lit(signature)}::regprocedure);
      v_new text := replace(v_old, ${sql.lit(from)}, ${sql.lit(to)});
    begin
      if v_new = v_old then
        raise exception 'migration: % does not contain %', ${sql.lit(signature)}, ${sql.lit(from)};
      end if;
      execute v_new;
    end
    $$
  `.execute(db);
}

const INSERTED_COLUMNS = ['size, status, workflow_id, webhook)', 'size, status, workflow_id, webhook, tier)'];
const INSERTED_VALUES = [
  'v_new.workflow_id, v_new.webhook)',
  "v_new.workflow_id, v_new.webhook, coalesce(v_new.tier, 'standard'))",
];
const PICKABLE = ['and cache_source_job_id is null', "and cache_source_job_id is null and tier = 'standard'"];

/**
 * The batch tier. `jobs.tier`: the tier serving the job, written by `submit_job` from the request.
 * `admit_waiting_jobs` gives no running slot to a batch job: it makes no call of its own, and would hold
 * the slot for up to a day. `provider_batches`: one per batch Kiln sends a provider (`forming` while it
 * takes jobs, `sealed` once its lines are fixed, `submitted`, `settled`). `batch_members`: each batch
 * job's line, pooled until a batch takes it, and how it ended there.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column tier text not null default 'standard'`.execute(db);
  await editFunction(db, SUBMIT_JOB, INSERTED_COLUMNS[0]!, INSERTED_COLUMNS[1]!);
  await editFunction(db, SUBMIT_JOB, INSERTED_VALUES[0]!, INSERTED_VALUES[1]!);
  await editFunction(db, ADMIT_WAITING_JOBS, PICKABLE[0]!, PICKABLE[1]!);
  await sql`
    create table provider_batches (
      id text primary key,
      provider text not null,
      model text not null,
      status text not null default 'forming',
      input_file_id text,
      provider_batch_id text,
      provider_state text,
      created_at timestamptz not null default now(),
      submitted_at timestamptz,
      expires_at timestamptz,
      settled_at timestamptz
    )
  `.execute(db);
  await sql`
    create table batch_members (
      job_id text primary key references jobs (id) on delete cascade,
      workflow_id text not null,
      provider text not null,
      model text not null,
      line jsonb,
      batch_id text references provider_batches (id),
      joined_at timestamptz not null default now(),
      outcome jsonb
    )
  `.execute(db);
  await sql`
    create index batch_members_pooled on batch_members (provider, model, joined_at) where batch_id is null
  `.execute(db);
  await sql`create index batch_members_of_batch on batch_members (batch_id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table batch_members`.execute(db);
  await sql`drop table provider_batches`.execute(db);
  await editFunction(db, ADMIT_WAITING_JOBS, PICKABLE[1]!, PICKABLE[0]!);
  await editFunction(db, SUBMIT_JOB, INSERTED_VALUES[1]!, INSERTED_VALUES[0]!);
  await editFunction(db, SUBMIT_JOB, INSERTED_COLUMNS[1]!, INSERTED_COLUMNS[0]!);
  await sql`alter table jobs drop column tier`.execute(db);
}

import { sql, type Kysely } from 'kysely';

/**
 * `generation_results`: for each request fingerprint within a cache scope, the job that produces (or
 * produced) its result: one that is still running is joined by identical requests, one that succeeded
 * (and was not purged) serves them from its stored result. A row whose job ended otherwise, or whose
 * result aged out or was purged, is taken over by the next identical request.
 *
 * On `jobs`: `cache_outcome` (`joined` while the job waits on another's call and after it was served by
 * it, `reused` when a stored result served it; null when it called a provider itself) and
 * `cache_source_job_id`, the job it joined or reused, which the end of that job wakes.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table generation_results (
      scope text not null,
      fingerprint text not null,
      job_id text not null references jobs (id) on delete cascade,
      claimed_at timestamptz not null default now(),
      primary key (scope, fingerprint)
    )
  `.execute(db);
  await sql`alter table jobs add column cache_outcome text, add column cache_source_job_id text`.execute(db);
  await sql`
    create index jobs_cache_followers on jobs (cache_source_job_id)
    where cache_source_job_id is not null
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index jobs_cache_followers`.execute(db);
  await sql`alter table jobs drop column cache_outcome, drop column cache_source_job_id`.execute(db);
  await sql`drop table generation_results`.execute(db);
}

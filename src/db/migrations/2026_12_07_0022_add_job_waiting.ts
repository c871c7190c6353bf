import { sql, type Kysely } from 'kysely';

/**
 * `waiting`: why a job that is not being worked on waits (`{ reason, since, until, attempt, maxCalls }`),
 * so that every way of watching it can say so; null while it is worked on and once it ended.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column waiting jsonb`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs drop column waiting`.execute(db);
}

import { sql, type Kysely } from 'kysely';

/**
 * `usage`: the tokens of the text call that made a job's result (see JobUsage), written with its entry
 * into `storing`: a retried attempt that finds the result kept finds its usage beside it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column usage jsonb`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs drop column usage`.execute(db);
}

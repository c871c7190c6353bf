import { sql, type Kysely } from 'kysely';

/**
 * `served_by`: the entry of its fallback chain a job calls now, or last called (see ServedBy); null
 * while it is on the provider it was submitted for.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column served_by jsonb`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs drop column served_by`.execute(db);
}

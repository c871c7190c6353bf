import { sql, type Kysely } from 'kysely';

/** Text jobs: they have no image size, and the text of their current attempt streams through Postgres. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('jobs')
    .alterColumn('size', (c) => c.dropNotNull())
    .execute();
  await db.schema
    .createTable('job_text_streams')
    .addColumn('job_id', 'text', (c) => c.primaryKey().references('jobs.id').onDelete('cascade'))
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // One row per written piece: appending is an insert, where growing one text value would rewrite it all.
  await db.schema
    .createTable('job_text_pieces')
    .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('offset', 'integer', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('job_text_pieces_pkey', ['job_id', 'attempt', 'offset'])
    .execute();
}

/** `size` stays nullable: text jobs' rows have no size to give back. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('job_text_pieces').execute();
  await db.schema.dropTable('job_text_streams').execute();
}

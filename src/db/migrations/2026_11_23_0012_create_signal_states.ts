import { sql, type Kysely } from 'kysely';

/**
 * Fleet-wide signals (the job failure rate) and whether each is firing, so that one process announces
 * each change; plus the index the failure-rate window reads recently finished jobs through.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('signal_states')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('firing', 'boolean', (c) => c.notNull())
    .addColumn('changed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('jobs_finished_at')
    .on('jobs')
    .column('completed_at')
    .where(sql.ref('status'), 'in', ['succeeded', 'failed'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_finished_at').execute();
  await db.schema.dropTable('signal_states').execute();
}

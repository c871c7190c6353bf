import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('jobs').addColumn('purged_at', 'timestamptz').execute();
  await db.schema
    .createIndex('jobs_unpurged_completed')
    .on('jobs')
    .columns(['status', 'completed_at'])
    .where(sql.ref('purged_at'), 'is', null)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_unpurged_completed').execute();
  await db.schema.alterTable('jobs').dropColumn('purged_at').execute();
}

import type { Kysely } from 'kysely';

/** Keyset pagination walks (created_at, id) downwards per user: one index range scan per page. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_user_created').execute();
  await db.schema
    .createIndex('jobs_user_created_id')
    .on('jobs')
    .columns(['user_id', 'created_at desc', 'id desc'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_user_created_id').execute();
  await db.schema.createIndex('jobs_user_created').on('jobs').columns(['user_id', 'created_at']).execute();
}

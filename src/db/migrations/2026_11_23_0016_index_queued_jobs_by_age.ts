import { sql, type Kysely } from 'kysely';

/**
 * Queue estimates count the jobs nearest ahead of a new one, newest first, up to a bound: this index
 * hands them over in that order, so an estimate reads at most the bound however long the queue is.
 * It replaces the (provider, model, created_at) index, which made every estimate count the whole
 * provider backlog ahead.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('jobs_provider_queued_newest')
    .on('jobs')
    .columns(['provider', 'created_at desc', 'id desc'])
    .where(sql.ref('status'), '=', 'queued')
    .execute();
  await db.schema.dropIndex('jobs_provider_queued').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('jobs_provider_queued')
    .on('jobs')
    .columns(['provider', 'model', 'created_at'])
    .where(sql.ref('status'), '=', 'queued')
    .execute();
  await db.schema.dropIndex('jobs_provider_queued_newest').execute();
}

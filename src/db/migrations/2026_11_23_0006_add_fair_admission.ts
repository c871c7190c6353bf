import { sql, type Kysely } from 'kysely';

/** Plans, per-user admission, fleet-wide provider slots and pauses, and the per-key submit rate. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('plan', 'text', (c) => c.notNull().defaultTo('free'))
    .execute();
  await db.schema.alterTable('jobs').addColumn('admitted_at', 'timestamptz').execute();
  // GCRA's "theoretical arrival time": one timestamp per key is the whole rate limiter state.
  await db.schema.alterTable('api_keys').addColumn('submit_tat', 'timestamptz').execute();
  // Admission and /v1/me read a user's unfinished jobs in submission order.
  await db.schema
    .createIndex('jobs_user_active')
    .on('jobs')
    .columns(['user_id', 'created_at', 'id'])
    .where(sql.ref('status'), 'in', ['queued', 'running', 'storing'])
    .execute();
  // Queue estimates count the queued jobs ahead on one provider.
  await db.schema
    .createIndex('jobs_provider_queued')
    .on('jobs')
    .columns(['provider', 'model', 'created_at'])
    .where(sql.ref('status'), '=', 'queued')
    .execute();
  // …and the recent call durations there.
  await db.schema
    .createIndex('jobs_provider_succeeded')
    .on('jobs')
    .columns(['provider', 'model', 'completed_at desc'])
    .where(sql.ref('status'), '=', 'succeeded')
    .execute();
  await db.schema
    .createTable('provider_slots')
    .addColumn('job_id', 'text', (c) => c.primaryKey())
    .addColumn('limit_key', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('provider_slots_limit_key').on('provider_slots').column('limit_key').execute();
  await db.schema
    .createTable('provider_pauses')
    .addColumn('limit_key', 'text', (c) => c.primaryKey())
    .addColumn('paused_until', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('provider_pauses').execute();
  await db.schema.dropTable('provider_slots').execute();
  await db.schema.dropIndex('jobs_provider_succeeded').execute();
  await db.schema.dropIndex('jobs_provider_queued').execute();
  await db.schema.dropIndex('jobs_user_active').execute();
  await db.schema.alterTable('api_keys').dropColumn('submit_tat').execute();
  await db.schema.alterTable('jobs').dropColumn('admitted_at').execute();
  await db.schema.alterTable('users').dropColumn('plan').execute();
}

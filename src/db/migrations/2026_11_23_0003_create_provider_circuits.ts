import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('provider_circuits')
    .addColumn('provider', 'text', (c) => c.primaryKey())
    .addColumn('state', 'text', (c) => c.notNull().defaultTo('closed'))
    .addColumn('consecutive_failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('open_until', 'timestamptz')
    .addColumn('probe_started_at', 'timestamptz')
    .execute();
  await db.schema.alterTable('jobs').addColumn('provider_task_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('jobs').dropColumn('provider_task_id').execute();
  await db.schema.dropTable('provider_circuits').execute();
}

import type { Kysely } from 'kysely';

/** When each limit key may next call its provider: the fleet-wide pacing of provider calls (GCRA). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('provider_pacing')
    .addColumn('limit_key', 'text', (c) => c.primaryKey())
    .addColumn('next_call_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('provider_pacing').execute();
}

import type { Kysely } from 'kysely';

/**
 * The trace each event was written in (OpenTelemetry's trace id, 32 hex digits): from a job's event to
 * its trace in Jaeger or any other backend. Null when tracing was off; a nullable column is added
 * without rewriting the table.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('job_events').addColumn('trace_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('job_events').dropColumn('trace_id').execute();
}

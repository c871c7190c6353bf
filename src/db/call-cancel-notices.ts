import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Channel on which a job whose cancel Temporal accepted is announced to every worker (payload: job id). */
export const CALL_CANCELS_CHANNEL = 'kiln_provider_call_cancels';

/** Tells every worker that `jobId` is being canceled, so the one calling its provider aborts at once. */
export async function announceCallCancel(db: Kysely<Database>, jobId: string): Promise<void> {
  await sql`select pg_notify(${CALL_CANCELS_CHANNEL}, ${jobId})`.execute(db);
}

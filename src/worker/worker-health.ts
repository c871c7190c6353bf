import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { KilnWorker } from './create-worker.js';

/** A database that has not answered `select 1` by then counts as unreachable. */
const DATABASE_TIMEOUT_MS = 2000;

export type WorkerHealth = { healthy: true } | { healthy: false; reason: string };

async function databaseAnswers(db: Kysely<Database>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>(
    (resolve) => (timer = setTimeout(() => resolve(false), DATABASE_TIMEOUT_MS)),
  );
  const query = sql`select 1`.execute(db).then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([query, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Healthy while every Temporal worker polls and Postgres answers; not once shutdown has begun. */
export async function checkWorkerHealth(worker: KilnWorker, db: Kysely<Database>): Promise<WorkerHealth> {
  if (!worker.isRunning()) return { healthy: false, reason: 'worker is not polling' };
  if (!(await databaseAnswers(db))) return { healthy: false, reason: 'database unreachable' };
  return { healthy: true };
}

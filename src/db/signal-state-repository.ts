import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Records whether the fleet-wide signal `name` is firing. True only for the one caller whose write
 * changed it: every process may evaluate the signal, and exactly one of them announces each change.
 */
export async function recordSignalState(
  db: Kysely<Database>,
  name: string,
  firing: boolean,
): Promise<boolean> {
  await db
    .insertInto('signal_states')
    .values({ name, firing: false })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const changed = await db
    .updateTable('signal_states')
    .set({ firing, changed_at: new Date() })
    .where('name', '=', name)
    .where('firing', '!=', firing)
    .returning('name')
    .executeTakeFirst();
  return changed !== undefined;
}

import { sql, type Kysely } from 'kysely';
import { generateApiKey, hashApiKey, randomId } from '../auth/api-key.js';
import { grantCreditsIn } from './credit-repository.js';
import type { Database, UserRow } from './schema.js';

/** Creates a user on `plan` (the column default when omitted), with `credits` granted in the ledger. */
export async function createUser(
  db: Kysely<Database>,
  name: string,
  { plan, credits = 0 }: { plan?: string; credits?: number } = {},
): Promise<UserRow> {
  return db.transaction().execute(async (trx) => {
    const user = await trx
      .insertInto('users')
      .values({ id: randomId('usr'), name, plan })
      .returningAll()
      .executeTakeFirstOrThrow();
    return credits > 0 ? { ...user, credits: await grantCreditsIn(trx, user.id, credits) } : user;
  });
}

export async function findUser(db: Kysely<Database>, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function setPlan(db: Kysely<Database>, userId: string, plan: string): Promise<void> {
  await db.updateTable('users').set({ plan }).where('id', '=', userId).execute();
}

export async function findUserByName(db: Kysely<Database>, name: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listUsers(db: Kysely<Database>): Promise<UserRow[]> {
  return db.selectFrom('users').selectAll().orderBy('created_at').execute();
}

/** Issues a new key for a user and returns it: the only time the key itself exists outside the caller. */
export async function issueApiKey(db: Kysely<Database>, userId: string): Promise<string> {
  const key = generateApiKey();
  await db
    .insertInto('api_keys')
    .values({ id: randomId('key'), user_id: userId, key_sha256: hashApiKey(key) })
    .execute();
  return key;
}

/** Postgres NOTIFY channel on which each revoked key's id is announced as the revocation commits. */
export const API_KEY_REVOCATIONS_CHANNEL = 'kiln_api_key_revocations';

/**
 * Revokes every key of a user and announces each, in one statement: API processes hear of it exactly
 * when it is committed, and end the sessions those keys opened. Returns how many keys were live.
 */
export async function revokeApiKeys(db: Kysely<Database>, userId: string): Promise<number> {
  const revoked = await db
    .with('revoked', (db) =>
      db
        .updateTable('api_keys')
        .set({ revoked_at: new Date() })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .returning('id'),
    )
    .selectFrom('revoked')
    .select(sql`pg_notify(${API_KEY_REVOCATIONS_CHANNEL}, revoked.id)`.as('notified'))
    .execute();
  return revoked.length;
}

/** Which of `keyIds` are still live: one query however many there are. */
export async function liveApiKeyIds(db: Kysely<Database>, keyIds: readonly string[]): Promise<Set<string>> {
  const rows = await db
    .selectFrom('api_keys')
    .select('id')
    .where(sql<boolean>`id = any(${keyIds}::text[])`)
    .where('revoked_at', 'is', null)
    .execute();
  return new Set(rows.map((row) => row.id));
}

/** Who is calling: the user of a live API key, with the plan that sets their slots and share. */
export interface Caller {
  userId: string;
  plan: string;
  /** The key they called with: what a revocation names, so only that key's sessions end. */
  keyId: string;
}

export async function findCallerByApiKey(db: Kysely<Database>, key: string): Promise<Caller | undefined> {
  return db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select(['users.id as userId', 'users.plan', 'api_keys.id as keyId'])
    .where('api_keys.key_sha256', '=', hashApiKey(key))
    .where('api_keys.revoked_at', 'is', null)
    .executeTakeFirst();
}

import { sql, type Kysely, type Transaction } from 'kysely';
import { generateWebhookSecret } from '../webhooks/signing.js';
import type { Database, UserRow } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A user's signing secret, as the API shows it to its owner. */
export interface WebhookSecret {
  secret: string;
  createdAt: string;
  /** The secret the last rotation replaced, while it still signs beside this one. */
  previous?: { expiresAt: string };
}

type SecretColumns = Pick<
  UserRow,
  'webhook_secret' | 'webhook_secret_created_at' | 'previous_webhook_secret_expires_at'
>;

const SECRET_COLUMNS = [
  'webhook_secret',
  'webhook_secret_created_at',
  'previous_webhook_secret_expires_at',
] as const;

/** Rows come from writes that always leave a secret; a previous one is shown only while it signs. */
function toWebhookSecret(row: SecretColumns): WebhookSecret {
  const current = { secret: row.webhook_secret!, createdAt: row.webhook_secret_created_at!.toISOString() };
  const expiresAt = row.previous_webhook_secret_expires_at;
  return expiresAt ? { ...current, previous: { expiresAt: expiresAt.toISOString() } } : current;
}

const previousStillSigns = sql<boolean>`users.previous_webhook_secret_expires_at > now()`;

/** A column of the previous secret as it is while the secret signs; null once its overlap has ended. */
function whileSigning<T>(column: 'previous_webhook_secret' | 'previous_webhook_secret_expires_at') {
  return sql<T | null>`case when ${previousStillSigns} then ${sql.ref(`users.${column}`)} end`;
}

/**
 * The user's signing secret, created now if they have none. The same statement forgets a previous secret
 * whose overlap has ended, so none is kept longer than it signs.
 */
export async function ensureWebhookSecret(db: Db, userId: string): Promise<WebhookSecret> {
  const row = await db
    .updateTable('users')
    .set({
      webhook_secret: sql<string>`coalesce(webhook_secret, ${generateWebhookSecret()})`,
      webhook_secret_created_at: sql<Date>`coalesce(webhook_secret_created_at, now())`,
      previous_webhook_secret: whileSigning<string>('previous_webhook_secret'),
      previous_webhook_secret_expires_at: whileSigning<Date>('previous_webhook_secret_expires_at'),
    })
    .where('id', '=', userId)
    .returning(SECRET_COLUMNS)
    .executeTakeFirstOrThrow();
  return toWebhookSecret(row);
}

/**
 * A new secret; the current one (if any) signs beside it for `overlapSeconds`, replacing any previous one.
 * One statement that reads the row it writes: concurrent rotations queue on the row lock and each takes
 * the secret the one before it made, so the previous secret is always one that was current, never lost
 * half-way. A repeated rotation rotates again.
 */
export async function rotateWebhookSecret(
  db: Db,
  userId: string,
  overlapSeconds: number,
): Promise<WebhookSecret> {
  const overlaps = overlapSeconds > 0;
  const row = await db
    .updateTable('users')
    .set({
      previous_webhook_secret: overlaps ? sql<string | null>`webhook_secret` : null,
      previous_webhook_secret_expires_at: overlaps
        ? sql<Date | null>`
            case when webhook_secret is not null then now() + make_interval(secs => ${overlapSeconds}) end`
        : null,
      webhook_secret: generateWebhookSecret(),
      webhook_secret_created_at: sql<Date>`now()`,
    })
    .where('id', '=', userId)
    .returning(SECRET_COLUMNS)
    .executeTakeFirstOrThrow();
  return toWebhookSecret(row);
}

/** For a query that joins `users`: the previous secret while it still signs, else null. */
export const signingPreviousSecret =
  whileSigning<string>('previous_webhook_secret').as('previous_webhook_secret');

import { sql, type Kysely } from 'kysely';

/**
 * Webhook secret rotation: when the current secret was made, and the one it replaced with the time that one
 * stops signing. During that overlap deliveries carry a signature under each, so a receiver can switch
 * secrets without refusing a delivery. Only one previous secret is kept.
 *
 * A secret made before this migration is dated with its user's creation: the earliest it can be, so a
 * policy that rotates secrets past an age errs toward rotating sooner.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table users
      add column webhook_secret_created_at timestamptz,
      add column previous_webhook_secret text,
      add column previous_webhook_secret_expires_at timestamptz
  `.execute(db);
  await sql`update users set webhook_secret_created_at = created_at where webhook_secret is not null`.execute(
    db,
  );
  // Each secret and its time are written together; the repository relies on it.
  await sql`
    alter table users
      add constraint users_webhook_secret_dated
        check ((webhook_secret is null) = (webhook_secret_created_at is null)),
      add constraint users_previous_webhook_secret_expires
        check ((previous_webhook_secret is null) = (previous_webhook_secret_expires_at is null))
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table users
      drop column previous_webhook_secret_expires_at,
      drop column previous_webhook_secret,
      drop column webhook_secret_created_at
  `.execute(db);
}

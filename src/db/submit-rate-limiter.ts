import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface SubmitRate {
  perMinute: number;
  /** Submissions allowed back to back before the rate applies. */
  burst: number;
}

export type SubmitVerdict = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * GCRA, the token bucket as one timestamp per key: each submission moves the key's "theoretical
 * arrival time" one interval on, and is refused while that time is more than `burst - 1` intervals
 * ahead of now. One conditional UPDATE, so concurrent submits on several API processes agree.
 */
export async function takeSubmitToken(
  db: Kysely<Database>,
  keySha256: string,
  { perMinute, burst }: SubmitRate,
): Promise<SubmitVerdict> {
  const intervalSecs = 60 / perMinute;
  const toleranceSecs = intervalSecs * (burst - 1);
  const scheduled = sql<Date>`greatest(coalesce(submit_tat, now()), now())`;
  const taken = await db
    .updateTable('api_keys')
    .set({ submit_tat: sql<Date>`${scheduled} + make_interval(secs => ${intervalSecs})` })
    .where('key_sha256', '=', keySha256)
    .where(sql<boolean>`${scheduled} <= now() + make_interval(secs => ${toleranceSecs})`)
    .returning('id')
    .executeTakeFirst();
  if (taken) return { allowed: true };
  const { ahead_ms } = await db
    .selectFrom('api_keys')
    .select(sql<number>`extract(epoch from (submit_tat - now())) * 1000`.as('ahead_ms'))
    .where('key_sha256', '=', keySha256)
    .executeTakeFirstOrThrow();
  return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(Number(ahead_ms) - toleranceSecs * 1000)) };
}

import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** A per-key submission limit: `perMinute` on average, after a burst. */
export interface SubmitRate {
  perMinute: number;
  /** Submissions allowed back to back before the rate applies. */
  burst: number;
}

/** A submit token refused: the key is over its rate, or no longer live. */
export type TokenRefusal = { kind: 'rate_limited'; retryAfterMs: number } | { kind: 'unauthorized' };

/**
 * GCRA, the token bucket as one timestamp per key: each submission moves the key's "theoretical
 * arrival time" one interval on, and is refused while that time is more than `burst - 1` intervals
 * ahead of now. The check and the move are one conditional UPDATE (`take_submit_token`, which
 * `submit_job` also runs), so concurrent submits on several API processes agree.
 */
export function gcraOf({ perMinute, burst }: SubmitRate): { intervalSecs: number; toleranceSecs: number } {
  const intervalSecs = 60 / perMinute;
  return { intervalSecs, toleranceSecs: intervalSecs * (burst - 1) };
}

/** What `take_submit_token` answered, but `taken`, as the API tells it. */
export function tokenRefusal(
  outcome: 'rate_limited' | 'unauthorized',
  aheadMs: number | null,
  rate: SubmitRate,
) {
  if (outcome === 'unauthorized') return { kind: outcome } satisfies TokenRefusal;
  const retryAfterMs = Math.max(1, Math.ceil(aheadMs! - gcraOf(rate).toleranceSecs * 1000));
  return { kind: outcome, retryAfterMs } satisfies TokenRefusal;
}

/**
 * Takes one of the key's submit tokens on its own: for a submission refused before it was recorded
 * (`submit_job` takes the token of every other one), so that every submission counts against the rate.
 */
export async function takeSubmitToken(
  db: Kysely<Database>,
  keySha256: string,
  rate: SubmitRate,
): Promise<{ kind: 'taken' } | TokenRefusal> {
  const { intervalSecs, toleranceSecs } = gcraOf(rate);
  const { rows } = await sql<{ outcome: 'taken' | 'rate_limited' | 'unauthorized'; ahead_ms: number | null }>`
    select outcome, ahead_ms from take_submit_token(${keySha256}, ${intervalSecs}, ${toleranceSecs})
  `.execute(db);
  const { outcome, ahead_ms } = rows[0]!;
  return outcome === 'taken' ? { kind: outcome } : tokenRefusal(outcome, ahead_ms, rate);
}

/** A per-key submission limit: `perMinute` on average, after a burst. */
export interface SubmitRate {
  perMinute: number;
  /** Submissions allowed back to back before the rate applies. */
  burst: number;
}

/**
 * GCRA, the token bucket as one timestamp per key: each submission moves the key's "theoretical
 * arrival time" one interval on, and is refused while that time is more than `burst - 1` intervals
 * ahead of now. The check and the move are one conditional UPDATE inside `submit_job`, so concurrent
 * submits on several API processes agree.
 */
export function gcraOf({ perMinute, burst }: SubmitRate): { intervalSecs: number; toleranceSecs: number } {
  const intervalSecs = 60 / perMinute;
  return { intervalSecs, toleranceSecs: intervalSecs * (burst - 1) };
}

/** How long a refused key waits for its next token, from how far ahead of now its schedule is. */
export function retryAfterMs(aheadMs: number, rate: SubmitRate): number {
  return Math.max(1, Math.ceil(aheadMs - gcraOf(rate).toleranceSecs * 1000));
}

import type { RequestHandler } from 'express';
import type { Kysely } from 'kysely';
import { bearerToken, hashApiKey } from '../auth/api-key.js';
import type { Database } from '../db/schema.js';
import { takeSubmitToken, type SubmitRate } from '../db/submit-rate-limiter.js';
import { ApiError } from './api-error.js';

/** Per API key: past the rate, `429 rate_limited` with `Retry-After`. Only behind `authenticate`. */
export function submitRateLimit(db: Kysely<Database>, rate: SubmitRate): RequestHandler {
  return async (req, res, next) => {
    const key = bearerToken(req.headers.authorization)!;
    const verdict = await takeSubmitToken(db, hashApiKey(key), rate);
    if (verdict.allowed) return next();
    res.set('Retry-After', String(Math.ceil(verdict.retryAfterMs / 1000)));
    throw new ApiError('rate_limited', `at most ${rate.perMinute} submissions per minute per API key`, {
      retryAfterMs: verdict.retryAfterMs,
    });
  };
}

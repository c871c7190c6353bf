import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Kysely } from 'kysely';
import { bearerToken } from '../auth/api-key.js';
import type { Database } from '../db/schema.js';
import { findCallerByApiKey } from '../db/user-repository.js';
import { ApiError } from './api-error.js';

/** Digests have one length whatever was sent, so comparing them leaks neither the key nor its length. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Admits requests carrying the admin key, compared in constant time. A user's API key is told apart
 * (403: known, not an operator) from no key or a wrong one (401), which costs a lookup only on refusal.
 */
export function requireAdminKey(adminKey: string, db: Kysely<Database>): RequestHandler {
  const expected = digest(adminKey);
  return async (req, res, next) => {
    const presented = bearerToken(req.headers.authorization);
    if (presented !== undefined && timingSafeEqual(digest(presented), expected)) return next();
    if (presented !== undefined && (await findCallerByApiKey(db, presented))) {
      throw new ApiError(403, 'forbidden', 'the operator API needs the admin key, not a user API key');
    }
    res.set('WWW-Authenticate', 'Bearer');
    throw new ApiError(401, 'unauthorized', 'the admin key is required (Authorization: Bearer …)');
  };
}

import type { RequestHandler } from 'express';
import type { Kysely } from 'kysely';
import { bearerToken } from '../auth/api-key.js';
import { secretMatcher } from '../auth/shared-secret.js';
import type { Database } from '../db/schema.js';
import { findCallerByApiKey } from '../db/user-repository.js';
import { ApiError } from './api-error.js';

/** The password of an `Authorization: Basic …` header (whatever the user name), if that is what it holds. */
function basicPassword(header: string | undefined): string | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const credentials = Buffer.from(match[1], 'base64').toString('utf8');
  const separator = credentials.indexOf(':');
  return separator < 0 ? undefined : credentials.slice(separator + 1);
}

export interface AdminKeyOptions {
  /** Also take the key as the password of `Authorization: Basic` (any user name), as a browser sends it. */
  acceptBasic?: boolean;
  /**
   * Refuse with a Basic challenge of this realm (implies `acceptBasic`): a browser then asks for the key
   * and keeps sending it to the same origin, with the Temporal Web UI's codec calls too.
   */
  basicRealm?: string;
}

/**
 * Admits requests carrying the admin key, compared in constant time. A user's API key is told apart
 * (403: known, not an operator) from no key or a wrong one (401), which costs a lookup only on refusal.
 */
export function requireAdminKey(
  adminKey: string,
  db: Kysely<Database>,
  { acceptBasic = false, basicRealm }: AdminKeyOptions = {},
): RequestHandler {
  const isAdminKey = secretMatcher(adminKey);
  const basic = acceptBasic || basicRealm !== undefined;
  // A browser prompts for Basic only; Bearer clients do not read the challenge.
  const challenge = basicRealm === undefined ? 'Bearer' : `Basic realm="${basicRealm}", charset="UTF-8"`;
  return async (req, res, next) => {
    const header = req.headers.authorization;
    const presented = bearerToken(header) ?? (basic ? basicPassword(header) : undefined);
    if (isAdminKey(presented)) return next();
    if (presented !== undefined && (await findCallerByApiKey(db, presented))) {
      throw new ApiError('forbidden', 'the operator API needs the admin key, not a user API key');
    }
    res.set('WWW-Authenticate', challenge);
    throw new ApiError('unauthorized', 'the admin key is required (Authorization: Bearer …)');
  };
}

import type { IncomingMessage } from 'node:http';
import type { RequestHandler, Response } from 'express';
import type { Kysely } from 'kysely';
import { bearerToken } from '../auth/api-key.js';
import type { Database } from '../db/schema.js';
import { findUserIdByApiKey } from '../db/user-repository.js';
import { ApiError } from './api-error.js';

/** Resolves the API key of a request (header `Authorization: Bearer …`) to its user, if any. */
export async function userIdOfRequest(
  db: Kysely<Database>,
  req: IncomingMessage,
): Promise<string | undefined> {
  const key = bearerToken(req.headers.authorization);
  return key ? findUserIdByApiKey(db, key) : undefined;
}

/** Refuses requests without a live API key; the caller's user id is then in `res.locals.userId`. */
export function authenticate(db: Kysely<Database>): RequestHandler {
  return async (req, res, next) => {
    const userId = await userIdOfRequest(db, req);
    if (!userId) {
      res.set('WWW-Authenticate', 'Bearer');
      throw new ApiError(401, 'unauthorized', 'a valid API key is required (Authorization: Bearer …)');
    }
    res.locals.userId = userId;
    next();
  };
}

/** The authenticated caller; only valid behind `authenticate`. */
export function callerOf(res: Response): string {
  return res.locals.userId as string;
}

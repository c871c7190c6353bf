import type { IncomingMessage } from 'node:http';
import type { RequestHandler, Response } from 'express';
import type { Kysely } from 'kysely';
import { bearerToken } from '../auth/api-key.js';
import type { Database } from '../db/schema.js';
import { findCallerByApiKey, type Caller } from '../db/user-repository.js';
import { ApiError } from './api-error.js';

/** Resolves the API key of a request (header `Authorization: Bearer …`) to its user, if any. */
export async function callerOfRequest(
  db: Kysely<Database>,
  req: IncomingMessage,
): Promise<Caller | undefined> {
  const key = bearerToken(req.headers.authorization);
  return key ? findCallerByApiKey(db, key) : undefined;
}

/** Refuses requests without a live API key; the caller is then in `res.locals.caller`. */
export function authenticate(db: Kysely<Database>): RequestHandler {
  return async (req, res, next) => {
    const caller = await callerOfRequest(db, req);
    if (!caller) {
      res.set('WWW-Authenticate', 'Bearer');
      throw new ApiError('unauthorized', 'a valid API key is required (Authorization: Bearer …)');
    }
    res.locals.caller = caller;
    next();
  };
}

/** The authenticated caller, plan included (read with their key); only valid behind `authenticate`. */
export function authenticatedCaller(res: Response): Caller {
  return res.locals.caller as Caller;
}

/** The authenticated caller's user id; only valid behind `authenticate`. */
export function callerOf(res: Response): string {
  return authenticatedCaller(res).userId;
}

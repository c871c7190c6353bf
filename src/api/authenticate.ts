import type { IncomingMessage } from 'node:http';
import type { RequestHandler, Response } from 'express';
import type { Kysely } from 'kysely';
import { bearerToken } from '../auth/api-key.js';
import type { Database } from '../db/schema.js';
import { findCallerByApiKey, type Caller } from '../db/user-repository.js';
import type { Submitter } from '../use-cases/submit-generation.js';
import { ApiError } from './api-error.js';
import type { KnownKeys } from './known-keys.js';
import { keyOfStreamProtocols } from './stream-key-protocol.js';

/** Resolves the API key of a request (header `Authorization: Bearer …`) to its user, if any. */
export async function callerOfRequest(
  db: Kysely<Database>,
  req: IncomingMessage,
): Promise<Caller | undefined> {
  const key = bearerToken(req.headers.authorization);
  return key ? findCallerByApiKey(db, key) : undefined;
}

/** A socket upgrade's caller: by its `Authorization` header, or the key a browser offers as a subprotocol. */
export async function callerOfUpgrade(
  db: Kysely<Database>,
  req: IncomingMessage,
): Promise<Caller | undefined> {
  const key =
    bearerToken(req.headers.authorization) ?? keyOfStreamProtocols(req.headers['sec-websocket-protocol']);
  return key ? findCallerByApiKey(db, key) : undefined;
}

/** The refusal of a request without a live API key. */
export function unauthorized(res: Response): ApiError {
  res.set('WWW-Authenticate', 'Bearer');
  return new ApiError('unauthorized', 'a valid API key is required (Authorization: Bearer …)');
}

/** Refuses requests without a live API key; the caller is then in `res.locals.caller`. */
export function authenticate(db: Kysely<Database>): RequestHandler {
  return async (req, res, next) => {
    const caller = await callerOfRequest(db, req);
    if (!caller) throw unauthorized(res);
    res.locals.caller = caller;
    next();
  };
}

/**
 * Refuses submissions with a key not known to be live; the submitter is then in `res.locals.submitter`.
 * A key this process has seen is not looked up again: the submission's own statement refuses it if it
 * was revoked since.
 */
export function authenticateSubmitter(knownKeys: KnownKeys): RequestHandler {
  return async (req, res, next) => {
    const key = bearerToken(req.headers.authorization);
    const known = key === undefined ? undefined : await knownKeys.find(key);
    if (!known) throw unauthorized(res);
    const submitter: Submitter = { userId: known.caller.userId, keySha256: known.keySha256 };
    res.locals.submitter = submitter;
    next();
  };
}

/** The submitter; only valid behind `authenticateSubmitter`. */
export function submitterOf(res: Response): Submitter {
  return res.locals.submitter as Submitter;
}

/** The authenticated caller, plan included (read with their key); only valid behind `authenticate`. */
export function authenticatedCaller(res: Response): Caller {
  return res.locals.caller as Caller;
}

/** The authenticated caller's user id; only valid behind `authenticate`. */
export function callerOf(res: Response): string {
  return authenticatedCaller(res).userId;
}

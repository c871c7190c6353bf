import express, { Router, type RequestHandler } from 'express';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.js';
import { ensureWebhookSecret, rotateWebhookSecret } from '../db/webhook-secret-repository.js';
import { ApiError } from './api-error.js';
import { authenticate, callerOf } from './authenticate.js';
import { validationError } from './invalid-request.js';

export const WEBHOOK_SECRET_PATH = '/v1/webhook-secret';

/** A day: time for a receiver to take the new secret; a week at most, so a replaced secret does not linger. */
const DEFAULT_OVERLAP_SECONDS = 86_400;
const MAX_OVERLAP_SECONDS = 7 * 86_400;

/** Body of `POST /v1/webhook-secret/rotate`; the body itself may be left out. */
export const rotateBodySchema = z
  .object({
    overlapSeconds: z
      .int()
      .min(0)
      .max(MAX_OVERLAP_SECONDS)
      .default(DEFAULT_OVERLAP_SECONDS)
      .describe('How long the replaced secret keeps signing beside the new one; 0: not at all'),
  })
  .strict();

/**
 * The body is optional, but one that is sent must be JSON: a body of another type would otherwise be
 * skipped, and the secret rotated with the default overlap whatever it said.
 */
const jsonIfAnyBody: RequestHandler = (req, _res, next) => {
  const hasBody = Number(req.get('Content-Length') ?? 0) > 0 || req.get('Transfer-Encoding') !== undefined;
  next(
    hasBody && !req.is('application/json')
      ? new ApiError('unsupported_media_type', 'Content-Type must be application/json')
      : undefined,
  );
};

function parseRotateBody(body: unknown): z.infer<typeof rotateBodySchema> {
  const parsed = rotateBodySchema.safeParse(body ?? {});
  if (!parsed.success) throw validationError(parsed.error, '(body)');
  return parsed.data;
}

/**
 * `GET /`: the caller's webhook secret, made on the first read. `POST /rotate`: a new one, the old one
 * signing beside it for the overlap. Only the caller's own: no path names a user.
 */
export function webhookSecretRoutes(db: Kysely<Database>): Router {
  const router = Router();
  router.use(authenticate(db));
  router.use((_req, res, next) => {
    // A secret in a shared cache would be one more place to leak it from.
    res.set('Cache-Control', 'no-store');
    next();
  });
  router.get('/', async (_req, res) => {
    res.json(await ensureWebhookSecret(db, callerOf(res)));
  });
  router.post('/rotate', jsonIfAnyBody, express.json({ limit: '1kb' }), async (req, res) => {
    const { overlapSeconds } = parseRotateBody(req.body);
    res.json(await rotateWebhookSecret(db, callerOf(res), overlapSeconds));
  });
  return router;
}

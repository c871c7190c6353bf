import express, {
  Router,
  type ErrorRequestHandler,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import type { Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import { readStreamedText } from '../db/text-stream-repository.js';
import { NO_TEXT } from '../events/text-stream.js';
import type { Database, JobRow } from '../db/schema.js';
import { JobStatus } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { ObjectStore } from '../storage/object-store.js';
import { ApiError } from './api-error.js';
import { authenticate, authenticateSubmitter, callerOf, submitterOf, unauthorized } from './authenticate.js';
import { cancelGeneration } from '../use-cases/cancel-generation.js';
import { extendDeadline } from '../use-cases/extend-deadline.js';
import { listGenerations } from '../use-cases/list-generations.js';
import { findOwnedJob } from '../use-cases/owned-job.js';
import { readJob } from '../use-cases/read-job.js';
import { recordSubmission } from '../use-cases/record-submission.js';
import { takeSubmitToken } from '../db/submit-rate-limiter.js';
import {
  submitGeneration,
  tokenRefused,
  type SubmitDependencies,
  type SubmitRefusal,
} from '../use-cases/submit-generation.js';
import {
  checkWebhookAddress,
  deadlineExtensionSchema,
  parseGenerationRequest,
  parseIdempotencyKey,
} from './generation-request.js';
import { validationError } from './invalid-request.js';
import type { JobEventHub } from './job-event-hub.js';
import type { KeySessions } from './key-sessions.js';
import type { KnownKeys } from './known-keys.js';
import { serveJobEvents } from './job-events-sse.js';
import { parseListQuery } from './list-query.js';
import { preferredWait, waitForJobEnd } from './prefer-wait.js';
import { cancelRefusal, extendRefusal, listRefusal, submitRefusal } from './refusals.js';
import { STREAM_PATH } from './job-stream.js';
import { addWebhookRoutes } from './webhook-routes.js';

export interface GenerationsRouteDependencies extends SubmitDependencies {
  db: Kysely<Database>;
  store: ObjectStore;
  providers: ProviderRegistry;
  /** Live job events, for the Server-Sent Events route. */
  hub: JobEventHub;
  /** Ends an event stream when the key it was opened with is revoked. */
  sessions: KeySessions;
  /** Keys seen live, so that a submission need not look its key up first. */
  knownKeys: KnownKeys;
  logger: Logger;
  config: SubmitDependencies['config'] & Pick<Config, 'providers'>;
}

const BODY_LIMIT = '32kb';

function links(id: string) {
  return {
    self: `/v1/generations/${id}`,
    content: `/v1/generations/${id}/content`,
    events: `/v1/generations/${id}/events`,
    stream: STREAM_PATH,
  };
}

const requireJson: RequestHandler = (req, _res, next) => {
  next(
    req.is('application/json')
      ? undefined
      : new ApiError('unsupported_media_type', 'Content-Type must be application/json'),
  );
};

/** The caller's job named by `:id`; another user's job is answered as a missing one. */
function ownedJobOf(db: Kysely<Database>) {
  return async (req: Request, res: Response): Promise<JobRow> => {
    const row = await findOwnedJob(db, callerOf(res), String(req.params.id));
    if (!row) throw new ApiError('not_found', 'no such job');
    return row;
  };
}

/** HTTP's answer to a refused submission, with the headers its status calls for. */
function refusedSubmission(res: Response, refusal: SubmitRefusal): ApiError {
  if (refusal.reason === 'unauthorized') return unauthorized(res);
  if (refusal.reason === 'rate_limited')
    res.set('Retry-After', String(Math.ceil(refusal.retryAfterMs / 1000)));
  return submitRefusal(refusal);
}

/**
 * `POST /`: the 202 of an accepted submission (a replay is marked), or its refusal's answer. With
 * `Prefer: wait=N`, the answer is held up to N s, and is 200 and the job if it ended by then.
 */
function postGeneration(deps: GenerationsRouteDependencies): RequestHandler {
  return async (req, res) => {
    const key = parseIdempotencyKey(req.get('Idempotency-Key'));
    const wait = preferredWait(req.get('Prefer'));
    const request = parseGenerationRequest(req.body, deps.providers, deps.config.providers.defaultProvider);
    await checkWebhookAddress(request, deps.config.webhooks);
    res.locals.submitTokenTaken = true;
    const outcome = await submitGeneration(deps, submitterOf(res), key, request);
    if (outcome.kind === 'refused') throw refusedSubmission(res, outcome);
    recordSubmission(deps.logger, outcome.submission);
    const { row, replayed, estimate } = outcome.submission;
    if (replayed) res.set('Idempotent-Replayed', 'true');
    res.location(links(row.id).self);
    if (wait !== undefined) {
      res.set('Preference-Applied', `wait=${wait}`);
      const ended = await waitForJobEnd(deps, row, wait, res);
      if (ended) return void res.status(200).json(ended);
    }
    res.status(202).json({ id: row.id, status: row.status, ...estimate, links: links(row.id) });
  };
}

/**
 * Every authenticated submission uses a submit token, and one over its key's rate is answered 429
 * whatever else is wrong with it, as when the limit was checked first. `submit_job` takes the token of
 * each submission that reaches it; one refused before (unreadable, invalid, its webhook refused) takes
 * its token here.
 */
function tokenOfRefused(deps: GenerationsRouteDependencies): ErrorRequestHandler {
  return async (error: unknown, _req, res, next) => {
    if (res.locals.submitter === undefined || res.locals.submitTokenTaken === true) return next(error);
    const rate = deps.config.submitRateLimit;
    const token = await takeSubmitToken(deps.db, submitterOf(res).keySha256, rate);
    next(token.kind === 'taken' ? error : refusedSubmission(res, tokenRefused(token, rate)));
  };
}

/** `GET /:id/content`: a succeeded job's result, until its retention period removes it. */
function serveContent(store: ObjectStore, ownedJob: ReturnType<typeof ownedJobOf>): RequestHandler {
  return async (req, res) => {
    const row = await ownedJob(req, res);
    if (row.purged_at)
      throw new ApiError('result_expired', 'the result was removed after its retention period');
    if (row.status !== JobStatus.succeeded || !row.storage_key) {
      throw new ApiError('result_not_ready', `job is ${row.status}; content exists once it has succeeded`);
    }
    const object = await store.get(row.storage_key);
    res.set({
      'Content-Type': object.contentType,
      'Content-Length': String(object.byteSize),
      ETag: `"${row.result_sha256}"`,
      'Cache-Control': 'private, max-age=31536000, immutable',
    });
    object.stream.pipe(res);
  };
}

export function generationsRoutes(deps: GenerationsRouteDependencies): Router {
  const router = Router();
  // Before the router-wide lookup: a submission's key is checked by the statement that records it, and
  // its submit token (the per-key rate limit) is taken there too.
  const json = express.json({ limit: BODY_LIMIT });
  const submitter = authenticateSubmitter(deps.knownKeys);
  router.post('/', submitter, requireJson, json, postGeneration(deps), tokenOfRefused(deps));

  router.use(authenticate(deps.db));
  const ownedJob = ownedJobOf(deps.db);

  router.post('/:id/cancel', async (req, res) => {
    const outcome = await cancelGeneration(deps, callerOf(res), String(req.params.id));
    if (outcome === 'not_found') throw cancelRefusal(outcome);
    const row = await ownedJob(req, res);
    if (outcome !== 'canceling') throw cancelRefusal(outcome, row);
    res.status(202).json({ id: row.id, status: row.status, links: links(row.id) });
  });

  router.post('/:id/deadline', requireJson, json, async (req, res) => {
    const parsed = deadlineExtensionSchema.safeParse(req.body);
    if (!parsed.success) throw validationError(parsed.error, '(body)');
    const outcome = await extendDeadline(deps, callerOf(res), String(req.params.id), parsed.data);
    if (outcome.kind === 'refused') throw extendRefusal(outcome);
    res.json({ id: String(req.params.id), deadline: outcome.deadline });
  });

  router.get('/', async (req, res) => {
    const outcome = await listGenerations(deps.db, callerOf(res), parseListQuery(req.query));
    if (outcome.kind === 'refused') throw listRefusal(outcome);
    res.json(outcome.page);
  });

  router.get('/:id', async (req, res) => {
    res.json(await readJob(deps, await ownedJob(req, res)));
  });

  router.get('/:id/events', serveJobEvents(deps.db, deps.hub, deps.sessions));

  // The polling fallback for streamed text: what the current attempt has written so far.
  router.get('/:id/text', async (req, res) => {
    const row = await ownedJob(req, res);
    if (row.kind !== 'text') throw new ApiError('not_a_text_job', `job ${row.id} is an ${row.kind} job`);
    if (row.purged_at)
      throw new ApiError('result_expired', 'the text was removed after its retention period');
    res.json((await readStreamedText(deps.db, row.id)) ?? NO_TEXT);
  });

  addWebhookRoutes(router, deps, ownedJob);
  router.get('/:id/content', serveContent(deps.store, ownedJob));
  return router;
}

import type { Request, RequestHandler, Response } from 'express';
import type { Kysely } from 'kysely';
import { toJob } from '../db/job-repository.js';
import type { Database } from '../db/schema.js';
import type { JobEvent } from '../events/job-event.js';
import type { TextUpdate } from '../events/text-stream.js';
import { isTerminal } from '../jobs/job.js';
import { trackOpenSocket } from '../observability/socket-metrics.js';
import { ApiError } from './api-error.js';
import { authenticatedCaller } from './authenticate.js';
import { invalidRequest } from './invalid-request.js';
import type { JobEventHub } from './job-event-hub.js';
import { TOO_MANY_STREAMS, type KeySessions } from './key-sessions.js';
import { findOwnedJob } from '../use-cases/owned-job.js';

/** Comments this often keep proxies from closing an idle stream. */
const KEEP_ALIVE_MS = 15_000;
/** Unsent bytes a slow reader may hold before the stream is ended; EventSource resumes by Last-Event-ID. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** What EventSource waits before it reconnects. */
const RECONNECT_MS = 1000;

/** The most digits a `Last-Event-ID` or `since` may have: more than any job's events, less than 2^53. */
export const MAX_SEQ_DIGITS = 9;
const SEQ = new RegExp(`^[0-9]{1,${MAX_SEQ_DIGITS}}$`);

/** A seq as `Last-Event-ID` or `since` gives it, if one is given; a malformed one is refused. */
function seqOf(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && SEQ.test(value)) return Number(value);
  throw invalidRequest({ field, message: 'must be a non-negative integer' });
}

/**
 * `Last-Event-ID` (what EventSource sends on reconnect), else `?since=`, else from the start. Both are
 * checked when both are sent: the URL EventSource reconnects to still carries `since`.
 */
function sinceOf(req: Request): number {
  const since = seqOf(req.query.since, 'since');
  return seqOf(req.get('Last-Event-ID'), 'Last-Event-ID') ?? since ?? 0;
}

function writeEvent(res: Response, event: JobEvent): void {
  res.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event.job)}\n\n`);
}

/** Without an id: `Last-Event-ID` stays the last numbered event, and a reconnect sends the text again. */
function writeText(res: Response, { type, ...update }: TextUpdate): void {
  res.write(`event: ${type}\ndata: ${JSON.stringify(update)}\n\n`);
}

/**
 * `GET /v1/generations/:id/events`: the job's events as Server-Sent Events, the same numbered events the
 * socket sends. Ends after the terminal event, or when the caller's key is revoked (EventSource's
 * reconnect is then refused with 401); a finished job with nothing newer answers 204, which tells
 * EventSource to stop reconnecting.
 */
export function serveJobEvents(
  db: Kysely<Database>,
  hub: JobEventHub,
  sessions: KeySessions,
): RequestHandler {
  return async (req, res) => {
    const { userId, keyId } = authenticatedCaller(res);
    const row = await findOwnedJob(db, userId, String(req.params.id));
    if (!row) throw new ApiError('not_found', 'no such job');
    const since = sinceOf(req);
    if (isTerminal(toJob(row).status) && since >= row.version) {
      res.status(204).end();
      return;
    }
    if (sessions.isFull(keyId)) throw new ApiError('too_many_streams', TOO_MANY_STREAMS);
    res.status(200).set({
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: ${RECONNECT_MS}\n\n`);
    const untrack = trackOpenSocket('sse');
    let unsubscribe = (): void => undefined;
    let ended = false;
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
    const end = () => {
      if (ended) return;
      ended = true;
      untrack();
      clearInterval(keepAlive);
      unsubscribe();
      res.end();
    };
    req.on('close', end);
    // Released once the response is over, however it ended: `end` may run inside `track` itself. None
    // when another stream of the key took the last place since the check above.
    const session = sessions.track(keyId, end);
    if (!session) return end();
    res.once('close', () => session.release());
    // A reader this far behind is dropped; EventSource resumes by Last-Event-ID.
    const writable = (): boolean => {
      if (ended) return false;
      if (res.writableLength <= MAX_BUFFERED_BYTES) return true;
      end();
      return false;
    };
    const onEvent = (event: JobEvent) => {
      if (!writable()) return;
      writeEvent(res, event);
      if (isTerminal(event.job.status)) end();
    };
    const onText = (update: TextUpdate) => {
      if (writable()) writeText(res, update);
    };
    unsubscribe = await hub.subscribe(row.id, since, { onEvent, onText, onEnd: end });
    if (ended) unsubscribe();
  };
}

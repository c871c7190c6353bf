import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import type { Caller } from '../db/user-repository.js';
import type { JobEvent } from '../events/job-event.js';
import type { TextUpdate } from '../events/text-stream.js';
import { assertExhaustive } from '../assert-exhaustive.js';
import { isTerminal, type Job, type JobDeadline, type TerminalStatus } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import { trackOpenSocket } from '../observability/socket-metrics.js';
import type { CancelOutcome } from '../use-cases/cancel-generation.js';
import type { ExtendOutcome } from '../use-cases/extend-deadline.js';
import { unavailableDependency } from './dependency-unavailable.js';
import { deadlineExtensionSchema } from './generation-request.js';
import { extendRefusal } from './refusals.js';
import type { ApiErrorCode } from './api-error-codes.js';
import type { JobEventHub, JobWatcher } from './job-event-hub.js';
import { TOO_MANY_STREAMS, type KeySession, type KeySessions } from './key-sessions.js';
import { chooseStreamProtocol } from './stream-key-protocol.js';

export const STREAM_PATH = '/v1/stream';

/** The same codes the HTTP cancel answers with. */
const CANCEL_ERRORS = {
  finished: { code: 'job_finished', message: 'job has already finished' },
  notFound: { code: 'not_found', message: 'no such job' },
} as const satisfies Record<string, { code: ApiErrorCode; message: string }>;

/**
 * A client that lets this much pile up unread is closed with SLOW_CONSUMER_CLOSE_CODE rather than
 * buffered without bound; it reconnects and resumes with `since`.
 */
const MAX_BUFFERED_BYTES = 1024 * 1024;
export const SLOW_CONSUMER_CLOSE_CODE = 4008;
/** The API key the socket was opened with was revoked; reconnecting with it is refused (401). */
export const API_KEY_REVOKED_CLOSE_CODE = 4001;
/**
 * The key reached its limit of open sockets as this one opened: a socket the upgrade's check let through
 * alongside another. Otherwise the upgrade itself is refused with 429 `too_many_streams`.
 */
export const TOO_MANY_STREAMS_CLOSE_CODE = 4029;

/** Sockets that miss a ping for this long are dropped, so dead peers do not hold subscriptions. */
const PING_INTERVAL_MS = 30_000;

/** A longer message is answered with an error; the socket stays open, as for any other bad message. */
const MAX_MESSAGE_BYTES = 4096;
/** Past this ws closes the socket (1009) without buffering the rest: no subscribe message is that big. */
const MAX_FRAME_BYTES = 64 * 1024;

const MESSAGE_ERRORS = {
  invalid: { code: 'invalid_message', message: 'unknown or malformed message' },
  tooLarge: { code: 'message_too_large', message: `messages are at most ${MAX_MESSAGE_BYTES} bytes` },
  tooManySubscriptions: {
    code: 'too_many_subscriptions',
    message: 'this API key holds as many subscriptions as it may: unsubscribe from another job first',
  },
} as const;

const clientMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('subscribe'),
    id: z.string().min(1).max(128),
    /** The last `seq` the client has: it receives the events after it. */
    since: z.number().int().min(0).optional(),
  }),
  z.object({ type: z.literal('unsubscribe'), id: z.string().min(1).max(128) }),
  z.object({ type: z.literal('cancel'), id: z.string().min(1).max(128) }),
  z.object({
    type: z.literal('extend_deadline'),
    id: z.string().min(1).max(128),
    deadline: deadlineExtensionSchema,
  }),
]);

/**
 * Messages the server sends; `text` and `reset` carry a text job's streamed text (see TextUpdate).
 * `subscription_ended` follows a job's terminal event, or answers a subscription to a job that had ended
 * with nothing after `since`: nothing more comes for that id.
 */
export type ServerMessage =
  | ({ type: 'job' } & Pick<JobEvent, 'seq' | 'job'> & { event: JobEvent['type'] })
  | (TextUpdate & { id: string })
  | { type: 'subscription_ended'; id: string; status: TerminalStatus }
  | { type: 'canceling'; id: string }
  | { type: 'deadline_extended'; id: string; deadline: JobDeadline }
  | { type: 'error'; error: { code: string; message: string }; id?: string };

export interface JobStreamDependencies {
  hub: JobEventHub;
  /** Closes a socket when the key it was opened with is revoked. */
  sessions: KeySessions;
  logger: Logger;
  /** The job `userId` may watch, as it is now; unknown and foreign jobs are alike undefined. */
  watchableJob(userId: string, jobId: string): Promise<Pick<Job, 'status' | 'version'> | undefined>;
  /** Cancels a job on behalf of `userId`, as `POST /v1/generations/:id/cancel` does. */
  cancel(userId: string, jobId: string): Promise<CancelOutcome>;
  /** Moves a job's deadlines later, as `POST /v1/generations/:id/deadline` does. */
  extendDeadline(userId: string, jobId: string, extension: JobDeadline): Promise<ExtendOutcome>;
  /** Authenticates the upgrade request; undefined refuses it. */
  callerOf(req: IncomingMessage): Promise<Pick<Caller, 'userId' | 'keyId'> | undefined>;
}

function send(socket: WebSocket, message: ServerMessage): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
}

function parseMessage(data: unknown): z.infer<typeof clientMessageSchema> | undefined {
  try {
    const parsed = clientMessageSchema.safeParse(JSON.parse(String(data)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Serves `/v1/stream`: clients subscribe to jobs by id and receive each state change until the end. */
export function createJobStream(deps: JobStreamDependencies) {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    handleProtocols: chooseStreamProtocol,
  });
  const alive = new WeakSet<WebSocket>();

  function onConnection(socket: WebSocket, { userId, keyId }: Pick<Caller, 'userId' | 'keyId'>): void {
    const subscriptions = new Map<string, () => void>();
    const session = deps.sessions.track(keyId, () =>
      socket.close(API_KEY_REVOKED_CLOSE_CODE, 'api key revoked'),
    );
    if (!session) {
      socket.close(TOO_MANY_STREAMS_CLOSE_CODE, 'too many sockets for this api key');
      return;
    }
    alive.add(socket);
    socket.once('close', trackOpenSocket('websocket'));
    socket.on('pong', () => alive.add(socket));
    socket.on('close', () => {
      session.release();
      subscriptions.forEach((unsubscribe) => unsubscribe());
    });
    // The default binaryType is kept, so every message arrives as one Buffer.
    socket.on('message', (data: Buffer) => {
      // Frames the client sent before it read the close frame still arrive: none is acted on.
      if (session.revoked) return;
      if (data.length > MAX_MESSAGE_BYTES) {
        send(socket, { type: 'error', error: MESSAGE_ERRORS.tooLarge });
        return;
      }
      const message = parseMessage(data);
      if (!message) {
        send(socket, { type: 'error', error: MESSAGE_ERRORS.invalid });
        return;
      }
      if (message.type === 'unsubscribe') {
        subscriptions.get(message.id)?.();
        return;
      }
      if (message.type === 'cancel') {
        void cancel(socket, session, userId, message.id);
        return;
      }
      if (message.type === 'extend_deadline') {
        void extend(socket, session, userId, message);
        return;
      }
      void subscribe(socket, session, userId, message, subscriptions);
    });
  }

  /** Sends unless the client let too much pile up unread: then it is closed, to resume by `since`. */
  function sendBounded(socket: WebSocket, message: ServerMessage): void {
    if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      socket.close(SLOW_CONSUMER_CLOSE_CODE, 'too slow: reconnect and subscribe with since');
      return;
    }
    send(socket, message);
  }

  /** Sends each event and piece of text; the terminal event ends the subscription. */
  function watcherOf(socket: WebSocket, id: string, end: (status: TerminalStatus) => void): JobWatcher {
    return {
      onEvent: (event) => {
        sendBounded(socket, { type: 'job', seq: event.seq, event: event.type, job: event.job });
        if (isTerminal(event.job.status)) end(event.job.status);
      },
      onText: (update) => sendBounded(socket, { ...update, id }),
    };
  }

  async function subscribe(
    socket: WebSocket,
    session: KeySession,
    userId: string,
    { id, since = 0 }: { id: string; since?: number },
    subs: Map<string, () => void>,
  ) {
    if (subs.has(id)) return;
    if (!session.takeSubscription()) {
      send(socket, { type: 'error', id, error: MESSAGE_ERRORS.tooManySubscriptions });
      return;
    }
    let unsubscribe: (() => void) | undefined;
    let ended = false;
    const stop = () => {
      if (!ended) session.releaseSubscription();
      ended = true;
      unsubscribe?.();
      subs.delete(id);
    };
    // Not after an unsubscribe: the client asked for nothing more.
    const end = (status: TerminalStatus) => {
      if (ended) return;
      stop();
      sendBounded(socket, { type: 'subscription_ended', id, status });
    };
    subs.set(id, stop);
    try {
      const job = await deps.watchableJob(userId, id);
      if (!job) {
        stop();
        send(socket, { type: 'error', id, error: { code: 'not_found', message: 'no such job' } });
        return;
      }
      // As SSE answers 204: an ended job with nothing after `since` has nothing to send, ever.
      if (isTerminal(job.status) && since >= job.version) return end(job.status);
      unsubscribe = await deps.hub.subscribe(id, since, watcherOf(socket, id, end));
      // The job may have ended, or the socket closed, while the current state was being read.
      if (ended || socket.readyState !== socket.OPEN) stop();
    } catch (error) {
      stop();
      deps.logger.error({ jobId: id, err: error }, 'subscribe failed');
      send(socket, { type: 'error', id, error: { code: 'internal', message: 'internal error' } });
    }
  }

  async function cancel(socket: WebSocket, session: KeySession, userId: string, id: string): Promise<void> {
    try {
      // A cancel acts on the key's authority, so the database is asked, not only what NOTIFY told so far.
      if (!(await session.confirmLive())) return;
      const outcome = await deps.cancel(userId, id);
      switch (outcome) {
        case 'canceling':
          return send(socket, { type: 'canceling', id });
        case 'finished':
          return send(socket, { type: 'error', id, error: CANCEL_ERRORS.finished });
        case 'not_found':
          return send(socket, { type: 'error', id, error: CANCEL_ERRORS.notFound });
        default:
          assertExhaustive(outcome, 'cancel outcome');
      }
    } catch (error) {
      deps.logger.error({ jobId: id, err: error }, 'cancel failed');
      send(socket, { type: 'error', id, error: { code: 'internal', message: 'internal error' } });
    }
  }

  /** The extension's answer, as the HTTP route's, but on the socket: the acknowledgement, or the error. */
  async function extend(
    socket: WebSocket,
    session: KeySession,
    userId: string,
    { id, deadline }: { id: string; deadline: JobDeadline },
  ): Promise<void> {
    try {
      if (!(await session.confirmLive())) return;
      const outcome = await deps.extendDeadline(userId, id, deadline);
      if (outcome.kind === 'extended')
        return send(socket, { type: 'deadline_extended', id, deadline: outcome.deadline });
      const { code, message } = extendRefusal(outcome);
      send(socket, { type: 'error', id, error: { code, message } });
    } catch (error) {
      deps.logger.error({ jobId: id, err: error }, 'deadline extension failed');
      const { code, message } = unavailableDependency(error) ?? {
        code: 'internal',
        message: 'internal error',
      };
      send(socket, { type: 'error', id, error: { code, message } });
    }
  }

  const pinger = setInterval(() => {
    for (const socket of wss.clients) {
      if (!alive.has(socket)) {
        socket.terminate();
        continue;
      }
      alive.delete(socket);
      socket.ping();
    }
  }, PING_INTERVAL_MS);
  pinger.unref();

  return {
    async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
      const caller = await deps.callerOf(req).catch((error: unknown) => {
        deps.logger.error({ err: error }, 'socket authentication failed');
        return undefined;
      });
      if (!caller) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      if (deps.sessions.isFull(caller.keyId)) {
        const code: ApiErrorCode = 'too_many_streams';
        const body = JSON.stringify({ error: { code, message: TOO_MANY_STREAMS } });
        const head = `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}`;
        socket.end(`HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n${head}\r\n\r\n${body}`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, caller));
    },
    async close(): Promise<void> {
      clearInterval(pinger);
      for (const socket of wss.clients) socket.close(1001, 'server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

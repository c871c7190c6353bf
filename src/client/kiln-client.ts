import type { z } from 'zod';
import type { generationBodySchema } from '../api/generation-request.js';
import type { listQuerySchema } from '../api/list-query.js';
import type {
  cancelingSchema,
  errorSchema,
  jobPageSchema,
  meSchema,
  submittedSchema,
} from '../api/response-schemas.js';
import type { JobEvent, JobEventType } from '../events/job-event.js';
import { applyTextUpdate, NO_TEXT, type StreamedText, type TextUpdate } from '../events/text-stream.js';
import { isTerminal, type Job } from '../jobs/job.js';
import { readServerSentEvents } from './server-sent-events.js';

/*
 * A small client for Kiln's public API, typed from the schemas the server validates and answers with.
 * It needs only fetch and web streams, so the same file runs in Node and in the browser.
 */

export type GenerationBody = z.input<typeof generationBodySchema>;
export type ListQuery = Partial<z.input<typeof listQuerySchema>>;
export type Submitted = z.infer<typeof submittedSchema> & {
  /** The key the submission went with: the one given, or the one generated. */
  idempotencyKey: string;
  /** True when the key was seen before and this is the existing job. */
  replayed: boolean;
};
export type JobPage = z.infer<typeof jobPageSchema>;
export type Canceling = z.infer<typeof cancelingSchema>;
export type Me = z.infer<typeof meSchema>;

export interface KilnClientOptions {
  /** Where the API is, e.g. `http://127.0.0.1:3000`; empty for the page's own origin. */
  baseUrl: string;
  apiKey: string;
  fetch?: typeof fetch;
  /** How often `watch` polls while the event stream is out of reach. Default 1000 ms. */
  pollIntervalMs?: number;
}

export interface WatchOptions {
  /** The last `seq` already seen: events after it are delivered. Default 0, the whole story. */
  since?: number;
  signal?: AbortSignal;
  /** Told each time the stream is lost and `watch` reconnects or polls, so a UI can show it. */
  onReconnecting?: () => void;
  /** Told each time the event stream is open again. */
  onConnected?: () => void;
  /**
   * For text jobs: told the text so far each time it grows, or starts again (a retried attempt), with
   * the update that changed it. Reconnects and polls hand over the whole text, so nothing is doubled.
   */
  onText?: (text: StreamedText, update: TextUpdate) => void;
}

/** An error answer of the API, as its `{ error: { code, message, details? } }` body says. */
export class KilnApiError extends Error {
  override readonly name = 'KilnApiError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Stream failures in a row after which `watch` reads the job by polling until the stream is back. */
const FAILURES_BEFORE_POLLING = 2;

async function errorOf(response: Response): Promise<KilnApiError> {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as z.infer<typeof errorSchema>;
    return new KilnApiError(response.status, error.code, error.message, error.details);
  } catch {
    return new KilnApiError(response.status, 'http_error', `HTTP ${response.status}: ${text.slice(0, 200)}`);
  }
}

/** Aborted by the caller, or refused for good (4xx): retrying cannot help. */
function isFinal(error: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (error instanceof KilnApiError && error.status < 500);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

function queryString(query: ListQuery): string {
  const entries = Object.entries(query).filter(([, value]) => value !== undefined);
  return entries.length === 0
    ? ''
    : `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)] as [string, string])).toString()}`;
}

function eventOf(id: string, type: string, data: string): JobEvent {
  return { seq: Number(id), type: type as JobEventType, job: JSON.parse(data) as Job };
}

export function createKilnClient(options: KilnClientOptions) {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const base = options.baseUrl.replace(/\/$/, '');
  const pollIntervalMs = options.pollIntervalMs ?? 1000;

  async function call(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${options.apiKey}`);
    const response = await fetchImpl(`${base}${path}`, { ...init, headers });
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async function json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await call(path, init)).json()) as T;
  }

  async function pollOnce(id: string, signal: AbortSignal | undefined): Promise<Job | undefined> {
    try {
      return await json<Job>(jobPath(id), { signal });
    } catch (error) {
      if (isFinal(error, signal)) throw error;
      return undefined;
    }
  }

  const jobPath = (id: string) => `/v1/generations/${encodeURIComponent(id)}`;

  /** The SSE route's events after `since`; undefined (a 204) when the job ended with nothing newer. */
  async function openEvents(
    id: string,
    since: number,
    onText: (update: TextUpdate) => void,
    signal?: AbortSignal,
  ) {
    const response = await call(`${jobPath(id)}/events`, {
      headers: { 'Last-Event-ID': String(since), Accept: 'text/event-stream' },
      signal,
    });
    return response.status === 204 || !response.body ? undefined : events(response.body, onText);
  }

  /** Numbered events are yielded; text updates, which carry no id, go to `onText`. */
  async function* events(
    body: ReadableStream<Uint8Array>,
    onText: (update: TextUpdate) => void,
  ): AsyncGenerator<JobEvent> {
    for await (const message of readServerSentEvents(body)) {
      if (message.id !== undefined) yield eventOf(message.id, message.event, message.data);
      else if (message.event === 'text' || message.event === 'reset') {
        onText({ type: message.event, ...JSON.parse(message.data) } as TextUpdate);
      }
    }
  }

  /** The polling fallback's text: the whole of it, as one update at offset 0. */
  async function pollText(id: string, signal: AbortSignal | undefined): Promise<TextUpdate | undefined> {
    try {
      const { attempt, text } = await json<StreamedText>(`${jobPath(id)}/text`, { signal });
      return { type: 'text', attempt, offset: 0, delta: text };
    } catch (error) {
      if (isFinal(error, signal)) throw error;
      return undefined;
    }
  }

  const client = {
    /** Submits a job; the idempotency key is generated when not given, so a retry must reuse `idempotencyKey`. */
    async submit(body: GenerationBody, idempotencyKey: string = crypto.randomUUID()): Promise<Submitted> {
      const response = await call('/v1/generations', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey },
        body: JSON.stringify(body),
      });
      const submitted = (await response.json()) as z.infer<typeof submittedSchema>;
      return {
        ...submitted,
        idempotencyKey,
        replayed: response.headers.get('Idempotent-Replayed') === 'true',
      };
    },

    get: (id: string) => json<Job>(jobPath(id)),
    list: (query: ListQuery = {}) => json<JobPage>(`/v1/generations${queryString(query)}`),
    cancel: (id: string) => json<Canceling>(`${jobPath(id)}/cancel`, { method: 'POST' }),
    me: () => json<Me>('/v1/me'),
    /** The result of a succeeded job. */
    content: async (id: string) => (await call(`${jobPath(id)}/content`)).blob(),
    /** A text job's output so far (its latest attempt's). */
    text: (id: string) => json<StreamedText>(`${jobPath(id)}/text`),

    /**
     * The job's events, in `seq` order, until its terminal event. A lost stream is resumed after the last
     * `seq` seen, so nothing is repeated or skipped; while the stream stays out of reach, the job is
     * polled instead (a poll sees the latest state, so `seq` may then jump).
     */
    async *watch(
      id: string,
      { since = 0, signal, onReconnecting, onConnected, onText }: WatchOptions = {},
    ): AsyncGenerator<JobEvent> {
      let last = since;
      let lastStatus: Job['status'] | undefined;
      let failures = 0;
      let text = NO_TEXT;
      const takeText = (update: TextUpdate) => {
        const next = applyTextUpdate(text, update);
        if (next.attempt === text.attempt && next.text === text.text) return;
        text = next;
        onText?.(text, update);
      };
      for (;;) {
        let progressed = false;
        try {
          const stream = await openEvents(id, last, takeText, signal);
          if (!stream) return;
          onConnected?.();
          for await (const event of stream) {
            if (event.seq <= last) continue;
            [last, lastStatus, failures, progressed] = [event.seq, event.job.status, 0, true];
            yield event;
            if (isTerminal(event.job.status)) return;
          }
        } catch (error) {
          failures += 1;
          if (isFinal(error, signal)) throw error;
        }
        // The stream was cut (a restart, a slow reader, the network): resume after `last`.
        onReconnecting?.();
        // Offline, the poll fails like the stream did, and both are tried again later.
        const job = failures >= FAILURES_BEFORE_POLLING ? await pollOnce(id, signal) : undefined;
        if (job?.kind === 'text' && onText && !isTerminal(job.status)) {
          const update = await pollText(id, signal);
          if (update) takeText(update);
        }
        if (job && job.version > last) {
          const type = job.status === lastStatus ? 'progress' : 'status';
          [last, lastStatus] = [job.version, job.status];
          yield { seq: job.version, type, job };
          if (isTerminal(job.status)) return;
        }
        await sleep(progressed ? 0 : pollIntervalMs, signal);
      }
    },
  };
  return client;
}

export type KilnClient = ReturnType<typeof createKilnClient>;

import {
  isTerminal,
  type Job,
  type JobEvent,
  type JobEventType,
  type StreamedText,
  type TextUpdate,
} from './api-types.js';
import { KilnApiError } from './errors.js';
import { readServerSentEvents } from './server-sent-events.js';
import { applyTextUpdate, NO_TEXT } from './text-updates.js';
import { jobPath, type Transport } from './transport.js';

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

/** Stream failures in a row after which `watch` reads the job by polling until the stream is back. */
const FAILURES_BEFORE_POLLING = 2;

/** Where a watch stands: the last event given out, and how often in a row the stream failed. */
interface Position {
  last: number;
  lastStatus?: Job['status'];
  failures: number;
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

/** Applies each text update to the text so far, and tells `onText` when that changed it. */
function textKeeper(onText: WatchOptions['onText']): (update: TextUpdate) => void {
  let text = NO_TEXT;
  return (update) => {
    const next = applyTextUpdate(text, update);
    if (next.attempt === text.attempt && next.text === text.text) return;
    text = next;
    onText?.(text, update);
  };
}

/** Numbered events are yielded; text updates, which carry no id, go to `onText`. */
async function* eventsOf(
  body: ReadableStream<Uint8Array>,
  onText: (update: TextUpdate) => void,
): AsyncGenerator<JobEvent> {
  for await (const message of readServerSentEvents(body)) {
    if (message.id !== undefined) {
      const job = JSON.parse(message.data) as Job;
      yield { seq: Number(message.id), type: message.event as JobEventType, job };
    } else if (message.event === 'text' || message.event === 'reset') {
      onText({ type: message.event, ...JSON.parse(message.data) } as TextUpdate);
    }
  }
}

/** The SSE route's events after `since`; undefined (a 204) when the job ended with nothing newer. */
async function openEvents(
  transport: Transport,
  id: string,
  since: number,
  onText: (update: TextUpdate) => void,
  signal?: AbortSignal,
): Promise<AsyncGenerator<JobEvent> | undefined> {
  const response = await transport.call(`${jobPath(id)}/events`, {
    headers: { 'Last-Event-ID': String(since), Accept: 'text/event-stream' },
    signal,
  });
  return response.status === 204 || !response.body ? undefined : eventsOf(response.body, onText);
}

/** A read that may fail for now: undefined then, unless the failure is final. */
async function tolerant<T>(read: () => Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (isFinal(error, signal)) throw error;
    return undefined;
  }
}

/**
 * The polling fallback: the job's latest state as an event, if it moved past `position` (a poll sees
 * the latest state, so `seq` may jump), with a text job's whole text so far given to `takeText` first.
 */
async function pollEvent(
  transport: Transport,
  id: string,
  position: Position,
  takeText: ((update: TextUpdate) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<JobEvent | undefined> {
  const job = await tolerant(() => transport.json<Job>(jobPath(id), { signal }), signal);
  if (job?.kind === 'text' && takeText && !isTerminal(job.status)) {
    const path = `${jobPath(id)}/text`;
    const streamed = await tolerant(() => transport.json<StreamedText>(path, { signal }), signal);
    if (streamed) takeText({ type: 'text', attempt: streamed.attempt, offset: 0, delta: streamed.text });
  }
  if (!job || job.version <= position.last) return undefined;
  const type = job.status === position.lastStatus ? 'progress' : 'status';
  [position.last, position.lastStatus] = [job.version, job.status];
  return { seq: job.version, type, job };
}

/**
 * The job's events, in `seq` order, until its terminal event. A lost stream is resumed after the last
 * `seq` seen, so nothing is repeated or skipped; while the stream stays out of reach, the job is polled
 * instead.
 */
export async function* watchJob(
  transport: Transport,
  pollIntervalMs: number,
  id: string,
  { since = 0, signal, onReconnecting, onConnected, onText }: WatchOptions = {},
): AsyncGenerator<JobEvent, void, undefined> {
  const position: Position = { last: since, failures: 0 };
  const takeText = textKeeper(onText);
  for (;;) {
    let progressed = false;
    try {
      const stream = await openEvents(transport, id, position.last, takeText, signal);
      if (!stream) return;
      onConnected?.();
      for await (const event of stream) {
        if (event.seq <= position.last) continue;
        [position.last, position.lastStatus, position.failures, progressed] = [
          event.seq,
          event.job.status,
          0,
          true,
        ];
        yield event;
        if (isTerminal(event.job.status)) return;
      }
    } catch (error) {
      position.failures += 1;
      if (isFinal(error, signal)) throw error;
    }
    // The stream was cut (a restart, a slow reader, the network): resume after `position.last`.
    onReconnecting?.();
    // Offline, the poll fails like the stream did, and both are tried again later.
    if (position.failures >= FAILURES_BEFORE_POLLING) {
      const event = await pollEvent(transport, id, position, onText && takeText, signal);
      if (event) yield event;
      if (event && isTerminal(event.job.status)) return;
    }
    await sleep(progressed ? 0 : pollIntervalMs, signal);
  }
}

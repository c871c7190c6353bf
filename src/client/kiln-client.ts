import type {
  AcceptedJob,
  Canceling,
  DeadlineExtended,
  JobDeadline,
  GenerationBody,
  Job,
  JobPage,
  ListQuery,
  Me,
  ProviderList,
  StreamedText,
} from './api-types.js';
import { runJob, type RunOptions, type RunResult } from './run-job.js';
import { createTransport, jobPath, type Transport } from './transport.js';
import { watchJob, type WatchOptions } from './watch-job.js';

/*
 * A small client for Kiln's public API. It needs only fetch and web streams, so the same code runs in
 * Node and in the browser.
 */

export interface KilnClientOptions {
  /** Where the API is, e.g. `http://127.0.0.1:3000`; empty for the page's own origin. */
  baseUrl: string;
  apiKey: string;
  fetch?: typeof fetch;
  /** How often `watch` polls while the event stream is out of reach. Default 1000 ms. */
  pollIntervalMs?: number;
}

export interface SubmitOptions {
  /** Generated when not given; a retry must reuse the answer's `idempotencyKey` to land on the same job. */
  idempotencyKey?: string;
  /**
   * Seconds the server may hold the answer for the job to end (`Prefer: wait`; whole seconds, the server
   * holds at most 60). Ended in time, the answer is the job (`ended: true`); otherwise the usual `202`.
   */
  wait?: number;
  signal?: AbortSignal;
}

interface SubmissionMeta {
  /** The key the submission went with: the one given, or the one generated. */
  idempotencyKey: string;
  /** True when the key was seen before and this is the existing job. */
  replayed: boolean;
}

/** The `202`: the job is accepted, and had not ended by the time of the answer. */
export interface Submitted extends AcceptedJob, SubmissionMeta {
  ended: false;
}

/** With `wait`: the job ended within it, and the answer is the job as it ended. */
export interface SubmittedEnded extends SubmissionMeta {
  ended: true;
  id: string;
  job: Job;
}

function listQueryString(query: ListQuery): string {
  const entries = Object.entries(query).filter(([, value]) => value !== undefined);
  return entries.length === 0
    ? ''
    : `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)] as [string, string])).toString()}`;
}

function submitHeaders(idempotencyKey: string, wait: number | undefined): Record<string, string> {
  const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey };
  if (wait === undefined) return headers;
  if (!Number.isInteger(wait) || wait < 0) throw new RangeError(`wait must be whole seconds, not ${wait}`);
  return { ...headers, Prefer: `wait=${wait}` };
}

async function postGeneration(
  transport: Transport,
  body: GenerationBody,
  { idempotencyKey = crypto.randomUUID(), wait, signal }: SubmitOptions,
): Promise<Submitted | SubmittedEnded> {
  const response = await transport.call('/v1/generations', {
    method: 'POST',
    headers: submitHeaders(idempotencyKey, wait),
    body: JSON.stringify(body),
    signal,
  });
  const meta = { idempotencyKey, replayed: response.headers.get('Idempotent-Replayed') === 'true' };
  // 200 only ever answers a `Prefer: wait` whose job ended in time; its body is the job.
  if (response.status === 200) {
    const job = (await response.json()) as Job;
    return { ...meta, ended: true, id: job.id, job };
  }
  return { ...((await response.json()) as AcceptedJob), ...meta, ended: false };
}

export function createKilnClient(options: KilnClientOptions) {
  const transport = createTransport(
    options.baseUrl,
    options.apiKey,
    options.fetch ?? globalThis.fetch.bind(globalThis),
  );
  const pollIntervalMs = options.pollIntervalMs ?? 1000;

  /** Submits a job; with `wait`, the server holds the answer until the job ends, for that long at most. */
  function submit(body: GenerationBody, options?: SubmitOptions & { wait?: undefined }): Promise<Submitted>;
  function submit(body: GenerationBody, options: SubmitOptions): Promise<Submitted | SubmittedEnded>;
  function submit(body: GenerationBody, submitOptions: SubmitOptions = {}) {
    return postGeneration(transport, body, submitOptions);
  }

  const watch = (id: string, watchOptions?: WatchOptions) =>
    watchJob(transport, pollIntervalMs, id, watchOptions);
  /** The result of a succeeded job: a PNG, or the text as `text/plain`. */
  const content = async (id: string, { signal }: { signal?: AbortSignal } = {}) =>
    (await transport.call(`${jobPath(id)}/content`, { signal })).blob();

  return {
    submit,
    get: (id: string) => transport.json<Job>(jobPath(id)),
    list: (query: ListQuery = {}) => transport.json<JobPage>(`/v1/generations${listQueryString(query)}`),
    cancel: (id: string) => transport.json<Canceling>(`${jobPath(id)}/cancel`, { method: 'POST' }),
    /** Moves the job's deadlines later (counted from submission); never earlier. */
    extendDeadline: (id: string, deadline: JobDeadline) =>
      transport.json<DeadlineExtended>(`${jobPath(id)}/deadline`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(deadline),
      }),
    me: () => transport.json<Me>('/v1/me'),
    /** The providers this deployment calls, with their models, sizes and credit prices. */
    providers: () => transport.json<ProviderList>('/v1/providers'),
    content,
    /** A text job's output so far (its latest attempt's). */
    text: (id: string) => transport.json<StreamedText>(`${jobPath(id)}/text`),
    /**
     * The job's events, in `seq` order, until its terminal event. A lost stream is resumed after the last
     * `seq` seen; while the stream stays out of reach, the job is polled instead (`seq` may then jump).
     */
    watch,
    /**
     * Submits, watches and resolves to the result: `{ kind: 'image', job, image }` (a PNG `Blob`) or
     * `{ kind: 'text', job, text }`. A job that ends `failed`, `canceled` or `expired` throws
     * `KilnJobError`; a refused submission throws `KilnApiError`.
     */
    run: <B extends GenerationBody>(request: B, runOptions?: RunOptions): Promise<RunResult<B['kind']>> =>
      runJob({ submit, watch, content }, request, runOptions),
  };
}

export type KilnClient = ReturnType<typeof createKilnClient>;

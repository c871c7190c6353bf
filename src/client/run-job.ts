import type { AcceptedJob, GenerationBody, Job, JobEvent, JobKind, StreamedText } from './api-types.js';
import { isUnsuccessful, KilnJobError } from './errors.js';
import { NO_TEXT } from './text-updates.js';
import type { WatchOptions } from './watch-job.js';

/**
 * Where a job `run` watches stands: once, where the submission put it in the queue (as the `202`
 * estimated it: the API tells no later position), then its progress at every change while it runs.
 */
export type QueueUpdate =
  | { status: 'queued'; id: string; queuePosition: number; estimatedWaitSeconds: number }
  | { status: 'running' | 'storing'; id: string; progress: number; job: Job };

/** A piece of a text job's output, as it arrives (a token or a few). */
export interface TextToken {
  /** What was added to the text; after a restart, the whole text so far. */
  delta: string;
  /** The text so far. */
  text: string;
  /**
   * A retried provider call started the text again: what was shown before is void, `text` replaces it.
   * A completion cannot be resumed, so the server streams the new attempt from its start.
   */
  restarted: boolean;
}

export interface RunOptions {
  /** Generated when not given. Give one to make a retried `run` land on the same job. */
  idempotencyKey?: string;
  /** Stops waiting (the job goes on; `cancel` it to stop it). */
  signal?: AbortSignal;
  onQueueUpdate?: (update: QueueUpdate) => void;
  /** Text jobs: each piece of the output as it is streamed. */
  onToken?: (token: TextToken) => void;
}

export interface ImageResult {
  kind: 'image';
  job: Job;
  /** The PNG. */
  image: Blob;
}

export interface TextResult {
  kind: 'text';
  job: Job;
  text: string;
}

/** What `run` resolves to for a job of kind `K`. */
export type RunResult<K extends JobKind = JobKind> = Extract<ImageResult | TextResult, { kind: K }>;

/** What `run` uses of the client. */
export interface RunDependencies {
  submit(
    body: GenerationBody,
    options: { idempotencyKey?: string; signal?: AbortSignal },
  ): Promise<AcceptedJob>;
  watch(id: string, options: WatchOptions): AsyncIterable<JobEvent>;
  content(id: string, options: { signal?: AbortSignal }): Promise<Blob>;
}

/** Turns the text so far, as `watch` tells it, into the pieces added to it. */
function tokensTo(onToken: (token: TextToken) => void): (text: StreamedText) => void {
  let shown = NO_TEXT;
  return (text) => {
    const grows = shown.attempt === 0 || (text.attempt === shown.attempt && text.text.startsWith(shown.text));
    onToken({
      delta: grows ? text.text.slice(shown.text.length) : text.text,
      text: text.text,
      restarted: !grows,
    });
    shown = text;
  };
}

/** The job as its terminal event tells it, with each running change told to `onQueueUpdate`. */
async function endOf(
  events: AsyncIterable<JobEvent>,
  onQueueUpdate: RunOptions['onQueueUpdate'],
): Promise<Job> {
  let last: Job | undefined;
  for await (const { job } of events) {
    last = job;
    if (job.status === 'running' || job.status === 'storing') {
      onQueueUpdate?.({ status: job.status, id: job.id, progress: job.progress, job });
    }
  }
  // Watched from seq 0, a job always has its terminal event, and watch ends only after it.
  return last!;
}

/** Submits, watches the job to its end, and resolves to its result; a job that ended without one throws. */
export async function runJob<B extends GenerationBody>(
  client: RunDependencies,
  request: B,
  { idempotencyKey, signal, onQueueUpdate, onToken }: RunOptions = {},
): Promise<RunResult<B['kind']>> {
  const accepted = await client.submit(request, { idempotencyKey, signal });
  const { id, queuePosition, estimatedWaitSeconds } = accepted;
  if (accepted.status === 'queued') {
    onQueueUpdate?.({ status: 'queued', id, queuePosition, estimatedWaitSeconds });
  }
  const onText = onToken && tokensTo(onToken);
  const job = await endOf(client.watch(id, { signal, onText }), onQueueUpdate);
  if (isUnsuccessful(job)) throw new KilnJobError(job);
  const content = await client.content(id, { signal });
  const result =
    job.kind === 'image'
      ? { kind: job.kind, job, image: content }
      : { kind: job.kind, job, text: await content.text() };
  return result as RunResult<B['kind']>;
}

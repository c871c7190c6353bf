import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import type { ServerMessage } from '../../src/api/job-stream.js';
import { isTerminal, type Job, type JobStatus } from '../../src/jobs/job.js';
import type { ApiTarget } from '../../test/harness/job-watcher.js';
import type { TestContext } from '../../test/harness/test-context.js';

/** One `POST /v1/generations`, timed from just before the request to the parsed answer. */
export interface Submitted {
  id: string;
  status: number;
  sentAt: number;
  answeredAt: number;
}

export async function submitTimed(api: ApiTarget, body: unknown): Promise<Submitted> {
  const sentAt = performance.now();
  const res = await fetch(`${api.url}/v1/generations`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${api.apiKey}`,
      'Content-Type': 'application/json',
      'Idempotency-Key': randomUUID(),
    },
    body: JSON.stringify(body),
  });
  const answer = (await res.json()) as { id?: string };
  const answeredAt = performance.now();
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${JSON.stringify(answer)}`);
  return { id: String(answer.id), status: res.status, sentAt, answeredAt };
}

/** Runs `task` for indexes 0…count−1 with at most `concurrency` running; results in index order. */
export async function inPool<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const index = next++;
        results[index] = await task(index);
      }
    }),
  );
  return results;
}

/** Submits `count` bodies with at most `concurrency` requests open; returns them in submission order. */
export function submitMany(
  api: ApiTarget,
  count: number,
  concurrency: number,
  body: (index: number) => unknown,
): Promise<Submitted[]> {
  return inPool(count, concurrency, (index) => submitTimed(api, body(index)));
}

/** What a watcher saw of one job: when each status first arrived (performance.now()), and the last state. */
export interface Watched {
  statusAt: Partial<Record<JobStatus, number>>;
  /** Every message's arrival time with its seq and progress. */
  messages: { at: number; seq: number; progress: number; status: JobStatus }[];
  /** When the first piece of a text job's streamed text arrived (performance.now()). */
  firstTextAt?: number;
  job?: Job;
  done: Promise<Job>;
}

/**
 * WebSocket subscriptions to many jobs of one user over a few sockets, recording when every event
 * arrived. Subscribing to jobs as they are submitted mirrors what the page does.
 */
export class JobWatcher {
  private readonly sockets: WebSocket[] = [];
  private readonly watched = new Map<string, Watched & { resolve(job: Job): void }>();
  private turn = 0;
  /** Error messages the server sent; a scenario reports them rather than crash mid-run. */
  readonly errors: string[] = [];

  private constructor(private readonly api: ApiTarget) {}

  static async open(api: ApiTarget, sockets = 1): Promise<JobWatcher> {
    const watcher = new JobWatcher(api);
    await Promise.all(Array.from({ length: sockets }, () => watcher.connect()));
    return watcher;
  }

  private async connect(): Promise<void> {
    const socket = new WebSocket(`${this.api.url.replace(/^http/, 'ws')}/v1/stream`, {
      headers: { Authorization: `Bearer ${this.api.apiKey}` },
    });
    socket.on('message', (data: Buffer) => this.onMessage(JSON.parse(data.toString()) as ServerMessage));
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    this.sockets.push(socket);
  }

  private onMessage(message: ServerMessage): void {
    const at = performance.now();
    if (message.type === 'error') {
      this.errors.push(JSON.stringify(message));
      return;
    }
    if (message.type === 'text' && message.delta !== '') {
      const entry = this.watched.get(message.id);
      if (entry) entry.firstTextAt ??= at;
    }
    if (message.type !== 'job') return;
    const entry = this.watched.get(message.job.id);
    if (!entry) return;
    const { job, seq } = message;
    entry.messages.push({ at, seq, progress: job.progress, status: job.status });
    entry.statusAt[job.status] ??= at;
    entry.job = job;
    if (isTerminal(job.status)) entry.resolve(job);
  }

  /** Subscribes to `jobId` (from its first event) on the next socket in turn. */
  watch(jobId: string): Watched {
    let resolve!: (job: Job) => void;
    const done = new Promise<Job>((r) => (resolve = r));
    const entry = { statusAt: {}, messages: [], done, resolve };
    this.watched.set(jobId, entry);
    const socket = this.sockets[this.turn++ % this.sockets.length]!;
    socket.send(JSON.stringify({ type: 'subscribe', id: jobId }));
    return entry;
  }

  get(jobId: string): Watched | undefined {
    return this.watched.get(jobId);
  }

  close(): void {
    for (const socket of this.sockets) socket.terminate();
  }
}

/** Resolves once every promise has, or rejects after `ms` naming how many were left. */
export async function allWithin<T>(promises: Promise<T>[], ms: number, what: string): Promise<T[]> {
  let settled = 0;
  let timer: NodeJS.Timeout | undefined;
  const counted = promises.map((p) => p.finally(() => (settled += 1)));
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`${what}: ${promises.length - settled} of ${promises.length} not done in ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([Promise.all(counted), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Calls `tick(i)` at `perSecond` for `seconds`, on a schedule that does not drift with slow ticks. */
export async function atRate(
  perSecond: number,
  seconds: number,
  tick: (index: number) => void,
): Promise<void> {
  const total = Math.round(perSecond * seconds);
  const startedAt = performance.now();
  for (let index = 0; index < total; index++) {
    const due = startedAt + (index * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    tick(index);
  }
}

/**
 * Ends the workflows of a run's jobs (20 at a time), so that the next run, or scenario, does not share
 * the dev server with them. One already closed is skipped.
 */
export async function terminateWorkflows(
  ctx: Pick<TestContext, 'temporal'>,
  workflowIds: string[],
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < workflowIds.length) {
        const id = workflowIds[next++]!;
        await ctx.temporal.workflow
          .getHandle(id)
          .terminate('benchmark run over')
          .catch(() => undefined);
      }
    }),
  );
}

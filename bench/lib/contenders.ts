import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { FakeOpenAIImagesServer } from '../../test/fakes/openai-images-server.js';
import { startBare, startDirect } from './baselines.js';
import { CpuMeter, sharedServer, type ProcessGroup } from './cpu.js';
import { inPool, JobWatcher } from './jobs.js';
import { openaiBody, startOpenAIBench } from './openai-setup.js';
import { TemporalJobs } from './temporal-jobs.js';

/** The designs a ratio scenario runs side by side, in the order each round runs them. */
export const DESIGNS = ['kiln', 'bare', 'direct'] as const;
export type DesignName = (typeof DESIGNS)[number];

/** One job's POST, timed at the client (performance.now()); status 0 when no answer came. */
export interface Posted {
  id: string;
  prompt: string;
  status: number;
  sentAt: number;
  answeredAt: number;
}

/** One design under load, driven the same way whichever it is. */
export interface Contender {
  name: DesignName;
  post(prompt: string, index: number): Promise<Posted>;
  /** When the client learned that the job ended (performance.now()), if the contender watches jobs. */
  ended(posted: Posted): Promise<number>;
  /** Resolves once every posted job ended. */
  settle(posted: Posted[], timeoutMs: number): Promise<void>;
  /** When each posted job ended at the server (epoch ms), for those that did. */
  endTimes(posted: Posted[]): Promise<number[]>;
  /** History events of one job; NaN for a design without Temporal. */
  historyEventsPerJob(posted: Posted[]): Promise<number>;
  /** Ends what `posted` left running, so the next round does not share the dev server with it. */
  discard(posted: Posted[]): Promise<void>;
  /** The processes of the design's stack, each a group; their sum is the whole stack. */
  meter: CpuMeter;
  stop(): Promise<void>;
}

export interface ContenderOptions {
  fake: FakeOpenAIImagesServer;
  /** Without a worker, jobs only queue: the submit path alone. */
  worker: boolean;
  /** Whether the client follows each job to its end (Kiln's WebSocket, `bare`'s long poll). */
  watch: boolean;
  /** Kiln's environment beyond the OpenAI fake's. */
  kilnEnv: Record<string, string>;
  /** Kiln users the load is spread over, as many clients' would be. */
  users: number;
}

async function timedPost(url: string, headers: Record<string, string>, body: unknown, prompt: string) {
  const sentAt = performance.now();
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as { id?: string };
    return { id: String(answer.id), prompt, status: res.status, sentAt, answeredAt: performance.now() };
  } catch {
    return { id: '', prompt, status: 0, sentAt, answeredAt: performance.now() };
  }
}

/** Whether the POST was taken: 202 from Kiln and `bare`, 200 (the job done) from `direct`. */
export const taken = (posted: Posted) => posted.status >= 200 && posted.status < 300;

const workflowIds = (posted: Posted[]) => posted.filter(taken).map((p) => p.id);

/** Posts `count` jobs with at most `concurrency` requests open; returns them in posting order. */
export function postMany(
  contender: Contender,
  count: number,
  concurrency: number,
  prompt: (index: number) => string,
): Promise<Posted[]> {
  return inPool(count, concurrency, (index) => contender.post(prompt(index), index));
}

/** Settling, end times, histories and cleanup through Temporal, for Kiln and `bare` alike. */
function temporalSide(jobs: TemporalJobs) {
  return {
    settle: (posted: Posted[], timeoutMs: number) => jobs.settle(workflowIds(posted), timeoutMs),
    endTimes: async (posted: Posted[]) => [...(await jobs.closeTimes(workflowIds(posted))).values()],
    historyEventsPerJob: (posted: Posted[]) => jobs.historyEventsPerJob(workflowIds(posted)),
    discard: (posted: Posted[]) => jobs.terminate(workflowIds(posted)),
  };
}

function meterOf(groups: Record<string, ProcessGroup | undefined>): CpuMeter {
  return new CpuMeter(
    Object.fromEntries(Object.entries(groups).filter((entry): entry is [string, ProcessGroup] => !!entry[1])),
  );
}

export async function startKiln(options: ContenderOptions): Promise<Contender> {
  const bench = await startOpenAIBench({
    env: options.kilnEnv,
    fake: options.fake,
    workers: options.worker ? 1 : 0,
    users: options.users,
  });
  const watchers = options.watch ? await Promise.all(bench.users.map((user) => JobWatcher.open(user))) : [];
  const watched = new Map<string, Promise<number>>();
  const workerPid = bench.workers[0]?.child.pid;
  return {
    name: 'kiln',
    async post(prompt, index) {
      const user = index % bench.users.length;
      const posted = await timedPost(
        `${bench.api.url}/v1/generations`,
        { Authorization: `Bearer ${bench.users[user]!.apiKey}`, 'Idempotency-Key': randomUUID() },
        openaiBody(prompt),
        prompt,
      );
      if (taken(posted) && options.watch) {
        const job = watchers[user]!.watch(posted.id);
        watched.set(
          posted.id,
          job.done.then((done) => {
            if (done.status !== 'succeeded') throw new Error(`job ${done.id} ended ${done.status}`);
            return job.statusAt.succeeded!;
          }),
        );
      }
      return posted;
    },
    ended: (posted) => watched.get(posted.id) ?? Promise.reject(new Error(`job ${posted.id} not watched`)),
    ...temporalSide(new TemporalJobs(bench.ctx.temporal, bench.ctx.env.TEMPORAL_TASK_QUEUE!)),
    meter: meterOf({
      temporal: sharedServer('temporal'),
      worker: workerPid === undefined ? undefined : { pid: workerPid },
      postgres: sharedServer('postgres'),
      storage: sharedServer('storage'),
      api: { pid: bench.api.child.pid! },
    }),
    async stop() {
      for (const watcher of watchers) watcher.close();
      await bench.stop();
    },
  };
}

export async function startBareContender(options: ContenderOptions): Promise<Contender> {
  const bare = await startBare(options.fake, { worker: options.worker });
  const connection = await Connection.connect({ address: process.env.KILN_TEST_TEMPORAL_ADDRESS! });
  const watched = new Map<string, Promise<number>>();
  const workerPid = bare.worker?.child.pid;
  return {
    name: 'bare',
    async post(prompt) {
      const posted = await timedPost(`${bare.url}/generations`, {}, { prompt }, prompt);
      if (taken(posted) && options.watch) {
        // Asked at once, as Kiln's client subscribes at once: the end reaches the client as it happens.
        const result = fetch(`${bare.url}/generations/${posted.id}/result`);
        watched.set(
          posted.id,
          result.then(async (res) => {
            if (!res.ok) throw new Error(`bare job ${posted.id} answered ${res.status}`);
            await res.arrayBuffer();
            return performance.now();
          }),
        );
      }
      return posted;
    },
    ended: (posted) => watched.get(posted.id) ?? Promise.reject(new Error(`job ${posted.id} not watched`)),
    ...temporalSide(new TemporalJobs(new Client({ connection }), bare.taskQueue)),
    meter: meterOf({
      temporal: sharedServer('temporal'),
      worker: workerPid === undefined ? undefined : { pid: workerPid },
      api: { pid: bare.api.child.pid! },
    }),
    async stop() {
      await bare.stop();
      await connection.close();
    },
  };
}

export async function startDirectContender(options: ContenderOptions): Promise<Contender> {
  const direct = await startDirect(options.fake);
  return {
    name: 'direct',
    async post(prompt) {
      const posted = await timedPost(`${direct.announced}/generations`, {}, { prompt }, prompt);
      // The answer is the job's end: no id comes back, so the prompt names it.
      return { ...posted, id: prompt };
    },
    ended: (posted) => Promise.resolve(posted.answeredAt),
    // Every POST answered only once its job ended.
    settle: () => Promise.resolve(),
    endTimes: (posted) => Promise.resolve(posted.map((p) => performance.timeOrigin + p.answeredAt)),
    historyEventsPerJob: () => Promise.resolve(Number.NaN),
    discard: () => Promise.resolve(),
    meter: meterOf({ api: { pid: direct.child.pid! } }),
    stop: () => direct.stop(),
  };
}

export const START_CONTENDER: Record<DesignName, (options: ContenderOptions) => Promise<Contender>> = {
  kiln: startKiln,
  bare: startBareContender,
  direct: startDirectContender,
};

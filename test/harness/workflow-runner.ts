import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  ApplicationFailure,
  CancelledFailure,
  Client,
  Connection,
  WorkflowFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { startTemporalDevServer, type TemporalDevServer } from '../../src/devstack/temporal-dev-server.js';
import type { JobDeadline, JobStatus } from '../../src/jobs/job.js';
import type { TokenPricing } from '../../src/jobs/token-pricing.js';
import {
  jobStatusQuery,
  type GenerationInput,
  type ProviderRetryPolicy,
} from '../../src/workflows/definitions.js';
import type { runGeneration } from '../../src/workflows/run-generation.js';
import { freePort } from './free-port.js';
import { createFakes, type Event, type Fakes, type Script } from './generation-fakes.js';

const workflowsPath = fileURLToPath(new URL('../../src/workflows/index.ts', import.meta.url));

/**
 * By default the server fires no timer sooner than 1 s after it was set
 * (`history.timerProcessorMaxTimeShift`), which turns every short backoff into a second.
 */
const TIMERS_ON_TIME = ['--dynamic-config-value', 'history.timerProcessorMaxTimeShift="10ms"'];

/** Short enough for seconds-long tests; each test overrides what it is about. */
const RETRY: ProviderRetryPolicy = {
  maxCalls: 3,
  maxInvalidOutputs: 1,
  budgetSeconds: 30,
  initialBackoffMs: 10,
  maxBackoffMs: 40,
};

/** The job's limits a test sets: its retry policy, the client's deadlines, and its fallback chain. */
export interface Limits {
  retry?: Partial<ProviderRetryPolicy>;
  deadline?: JobDeadline;
  /** Providers to fall back on after `fake`, in order: each makes 512x512 images, on the same fake queue. */
  fallbacks?: string[];
  afterFailedCalls?: number;
  /** `fake`'s calls go to a task queue no worker polls: they wait there until given up on. */
  fakeUnpolled?: boolean;
  /**
   * A text job (maxTokens 100) whose chain's entries are priced by tokens, `fake` first, then each
   * fallback; null for an entry priced per job.
   */
  tokenPrices?: (TokenPricing | null)[];
}

/** What the chain's entries cost: `fake` the most, each fallback one credit less than the one before. */
export const PRIMARY_COST = 5;

function fallbackRoute(
  providerTaskQueue: string,
  { fallbacks = [], afterFailedCalls = 2, fakeUnpolled, tokenPrices }: Limits,
) {
  const size = (index: number) => (index === 0 ? ('256x256' as const) : ('512x512' as const));
  const entry = (provider: string, index: number) => ({
    provider,
    model: `${provider}-1`,
    size: tokenPrices ? null : size(index),
    maxTokens: tokenPrices ? TEXT_MAX_TOKENS : null,
    taskQueue: index === 0 && fakeUnpolled ? `${providerTaskQueue}.unpolled` : providerTaskQueue,
    cost: PRIMARY_COST - index,
    ...(tokenPrices?.[index] && { tokenPricing: tokenPrices[index] }),
  });
  return { entries: ['fake', ...fallbacks].map(entry), afterFailedCalls };
}

const TEXT_MAX_TOKENS = 100;

function inputFor(jobId: string, taskQueue: string, limits: Limits): GenerationInput {
  const { retry, deadline, fallbacks, tokenPrices } = limits;
  const providerTaskQueue = `${taskQueue}.provider.fake`;
  const shape = tokenPrices
    ? ({ kind: 'text', size: null, maxTokens: TEXT_MAX_TOKENS } as const)
    : ({ kind: 'image', size: '256x256', maxTokens: null } as const);
  const primaryPricing = !fallbacks && tokenPrices?.[0];
  return {
    jobId,
    request: {
      prompt: 'a kiln at dawn',
      provider: 'fake',
      model: 'fake-1',
      ...shape,
      ...(deadline ? { deadline } : {}),
    },
    seed: 7,
    // A 1 s heartbeat timeout: a cancel reaches a call within 0.8 s (the heartbeat throttle).
    providerTimeouts: { heartbeatSeconds: 1, attemptSeconds: 10 },
    retry: { ...RETRY, ...retry },
    providerTaskQueue,
    ...(fallbacks ? { fallback: fallbackRoute(providerTaskQueue, limits) } : {}),
    ...(primaryPricing && { tokenPricing: primaryPricing }),
  };
}

type GenerationHandle = WorkflowHandle<typeof runGeneration>;

/** How the workflow closed, and what its status query says. */
export type WorkflowEnd = { jobStatus: JobStatus } & (
  | { closed: 'completed' }
  | { closed: 'canceled' }
  | { closed: 'failed'; type: string | null | undefined; message: string }
);

async function endOf(handle: GenerationHandle): Promise<WorkflowEnd> {
  const closed = await handle.result().then(
    () => ({ closed: 'completed' }) as const,
    (error: unknown) => {
      if (error instanceof WorkflowFailedError && error.cause instanceof CancelledFailure)
        return { closed: 'canceled' } as const;
      if (error instanceof WorkflowFailedError && error.cause instanceof ApplicationFailure)
        return { closed: 'failed', type: error.cause.type, message: error.cause.message } as const;
      throw error;
    },
  );
  return { ...closed, jobStatus: await handle.query(jobStatusQuery) };
}

/** One job run to its end, and what the fakes saw of it. */
export interface Run {
  jobId: string;
  end: WorkflowEnd;
  /** The fake activity calls in order. */
  events: Event[];
  count(event: Event): number;
  /** The argument of the first `event`. */
  argOf(event: Event): unknown;
  /** The arguments of every `event`, in order. */
  argsOf(event: Event): unknown[];
  /** When each `event` happened, in order (ms since the epoch). */
  timesOf(event: Event): number[];
}

export interface WorkflowRunner {
  /**
   * Runs one job to its end on task queues of its own: a worker for the workflow and its local
   * activities, another for the provider's queue. `meanwhile` acts on the running workflow.
   */
  runJob(
    script: Script & Limits,
    meanwhile?: (handle: GenerationHandle, fakes: Fakes) => Promise<void>,
  ): Promise<Run>;
  /** A closed job's history, as `temporal workflow show --output json` and the Web UI export it. */
  historyJSON(jobId: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Ports are free when picked but may be taken before the server binds them (other suites on this
 * machine start servers too): a server that exits at start is tried again on other ports.
 */
async function startServer(attempts = 3): Promise<TemporalDevServer> {
  for (let attempt = 1; ; attempt++) {
    const log: string[] = [];
    try {
      return await startTemporalDevServer({
        port: await freePort(),
        httpPort: await freePort(),
        extraArgs: TIMERS_ON_TIME,
        onLog: (line) => log.push(line),
      });
    } catch (error) {
      if (attempt === attempts) throw new Error(`dev server: ${log.slice(-5).join('\n')}`, { cause: error });
    }
  }
}

/**
 * A Temporal dev server of its own (not `npm test`'s shared one, whose timers fire a second late), the
 * real workflow bundle, and workers whose activities are fakes.
 */
export async function startWorkflowRunner(): Promise<WorkflowRunner> {
  // The SDK logs every failed activity and workflow at WARN: these tests are made of them.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const server = await startServer();
  const { address } = server;
  const [workerConnection, client, workflowBundle] = await Promise.all([
    NativeConnection.connect({ address }),
    Connection.connect({ address }).then((connection) => new Client({ connection })),
    bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('ERROR') }),
  ]);

  async function runJob(script: Script & Limits, meanwhile?: Parameters<WorkflowRunner['runJob']>[1]) {
    const jobId = `job_${randomUUID().replaceAll('-', '')}`;
    const taskQueue = `retry-loop-${jobId}`;
    const input = inputFor(jobId, taskQueue, script);
    const fakes = createFakes(script);
    const [workflowWorker, providerWorker] = await Promise.all([
      Worker.create({
        connection: workerConnection,
        taskQueue,
        workflowBundle,
        activities: fakes.local,
        // The same bundle and sandbox on this thread: a worker thread per test cost ~0.5 s of CPU.
        debugMode: true,
      }),
      Worker.create({
        connection: workerConnection,
        taskQueue: input.providerTaskQueue,
        activities: fakes.provider,
      }),
    ]);
    const job = (async () => {
      const handle = await client.workflow.start<typeof runGeneration>('runGeneration', {
        workflowId: jobId,
        taskQueue,
        args: [input],
        // A test that goes wrong fails within a minute instead of waiting for the suite's timeout.
        workflowExecutionTimeout: '60s',
      });
      await meanwhile?.(handle, fakes);
      return endOf(handle);
    })();
    const [end] = await Promise.all([workflowWorker.runUntil(job), providerWorker.runUntil(job)]);
    const { recorded } = fakes;
    const events = recorded.map((r) => r.event);
    return {
      jobId,
      end,
      events,
      count: (event: Event) => events.filter((e) => e === event).length,
      argOf: (event: Event) => recorded.find((r) => r.event === event)?.arg,
      argsOf: (event: Event) => recorded.filter((r) => r.event === event).map((r) => r.arg),
      timesOf: (event: Event) => recorded.filter((r) => r.event === event).map((r) => r.at),
    };
  }

  return {
    runJob,
    historyJSON: async (jobId) => historyToJSON(await client.workflow.getHandle(jobId).fetchHistory()),
    stop: async () => {
      await client.connection.close();
      await workerConnection.close();
      await server.stop();
    },
  };
}

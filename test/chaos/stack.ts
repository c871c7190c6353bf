import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureWebhookSecret } from '../../src/db/webhook-secret-repository.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../src/devstack/temporal-dev-server.js';
import { startFakeOpenAIBatchServer, type FakeOpenAIBatchServer } from '../fakes/openai-batch-server.js';
import {
  startFakeOpenAIChatServer,
  type ChatBody,
  type FakeOpenAIChatServer,
} from '../fakes/openai-chat-server.js';
import { startFakeOpenAIImagesServer, type FakeOpenAIImagesServer } from '../fakes/openai-images-server.js';
import { startWebhookReceiver, type FakeWebhookReceiver } from '../fakes/webhook-receiver.js';
import { freePort } from '../harness/free-port.js';
import { startHoldingProxy, type HoldingProxy } from '../harness/holding-proxy.js';
import { spawnKilnProcess, type KilnProcess } from '../harness/kiln-processes.js';
import { startMinio, type MinioServer } from '../harness/minio.js';
import { startPostgresCluster, type PostgresCluster } from '../harness/postgres.js';
import { createTestContext, type TestContext } from '../harness/test-context.js';

/** Kiln's processes in the campaign: each slot holds one process at a time, replaced when killed. */
export type ProcessKind = 'api' | 'worker';

/** Everything the campaign runs and breaks: its own servers, so that any of them may be restarted. */
export interface ChaosStack {
  ctx: TestContext;
  postgres: PostgresCluster;
  /** Storage goes through this proxy, which can stall writes. */
  storage: HoldingProxy;
  images: FakeOpenAIImagesServer;
  chat: FakeOpenAIChatServer;
  /** OpenAI's Files and Batch APIs, for the batch tier's jobs. */
  batches: FakeOpenAIBatchServer;
  webhooks: FakeWebhookReceiver;
  processes: Record<ProcessKind, KilnProcess[]>;
  /** What every Kiln process of the campaign printed, replaced ones too, each under a label. */
  everyProcess(): { label: string; output: string }[];
  /** Base URLs of the API processes serving now. */
  apiUrls(): string[];
  /** Kills (or stops) one process and, `downMs` after it exited, starts its replacement. */
  replace(kind: ProcessKind, slot: number, signal: NodeJS.Signals, downMs: number): Promise<void>;
  restartTemporal(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

const PROCESSES_PER_KIND = 2;

type OpenAIFake = Pick<FakeOpenAIImagesServer, 'url' | 'apiKey'>;

/** The fake that serves a path: chat completions, files and batches each to their own, images to the other. */
function fakeFor(path: string, fakes: { images: OpenAIFake; chat: OpenAIFake; batches: OpenAIFake }) {
  if (path.startsWith('/v1/chat/')) return fakes.chat;
  if (path.startsWith('/v1/files') || path.startsWith('/v1/batches')) return fakes.batches;
  return fakes.images;
}

/** One base URL for every OpenAI endpoint Kiln calls, each to the fake that speaks it. */
async function startProviderRouter(fakes: {
  images: OpenAIFake;
  chat: OpenAIFake;
  batches: OpenAIFake;
}): Promise<Server> {
  const server = createServer((req, res) => {
    const fake = fakeFor(req.url ?? '', fakes);
    const target = new URL(fake.url);
    const key = fake.apiKey;
    const outgoing = request({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: target.host, authorization: `Bearer ${key}` },
    });
    outgoing.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    // A reset upstream is a reset here, as the client would see it from the provider.
    outgoing.on('error', () => res.socket?.destroy());
    res.on('close', () => outgoing.destroy());
    req.pipe(outgoing);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/*
 * Batches whose lines run 150 ms apart and expire 2 s after their creation: a batch of more than a dozen
 * lines expires part done. A line fails as the sum of its prompt's code points says: 1 in 20 with a 500
 * (its job moves on as its `onBatchMiss` says), 1 in 20 refused with a 400.
 */
const BATCH_FAKE = {
  lineMs: 150,
  expireAfterMs: 2000,
  lineBehaviour: (body: ChatBody) => {
    const prompt = body.messages.at(-1)?.content ?? '';
    const sum = [...prompt].reduce((total, char) => total + (char.codePointAt(0) ?? 0), 0);
    if (sum % 20 === 0) return { status: 500, message: 'The server had an error.' };
    if (sum % 20 === 1) return { status: 400, message: 'Invalid max_completion_tokens.' };
    return 'ok' as const;
  },
};

function apiUrlOf(process: KilnProcess): string | undefined {
  const line = process
    .output()
    .split('\n')
    .find((entry) => entry.includes('api listening'));
  return line ? (JSON.parse(line) as { url: string }).url : undefined;
}

export async function startChaosStack(): Promise<ChaosStack> {
  const postgres = await startPostgresCluster({ crashSafe: true });
  const temporalDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-chaos-temporal-'));
  const temporalOptions = {
    port: await freePort(),
    httpPort: await freePort(),
    dbFile: path.join(temporalDir, 't.db'),
  };
  let temporal: TemporalDevServer = await startTemporalDevServer(temporalOptions);
  const minio: MinioServer = await startMinio();
  const storage = await startHoldingProxy(minio.endpoint, (req) => req.method === 'PUT');
  const images = await startFakeOpenAIImagesServer();
  const chat = await startFakeOpenAIChatServer();
  const batches = await startFakeOpenAIBatchServer(BATCH_FAKE);
  const router = await startProviderRouter({ images, chat, batches });
  const webhooks = await startWebhookReceiver();
  const ctx = await createTestContext(
    {
      OPENAI_API_KEY: 'sk-chaos',
      OPENAI_BASE_URL: `http://127.0.0.1:${(router.address() as AddressInfo).port}/v1`,
      DEFAULT_PROVIDER: 'openai',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_BACKOFF_INITIAL_MS: '500',
      WEBHOOK_BACKOFF_MAX_MS: '2000',
      PROVIDER_BACKOFF_INITIAL_MS: '200',
      PROVIDER_BACKOFF_MAX_MS: '2000',
      PROVIDER_MAX_CALLS: '20',
      // Text priced by the tokens it used, the fallback cheaper: the ledger check follows each job's usage.
      TEXT_TOKEN_PRICES: JSON.stringify({
        'openai:gpt-4o-mini': [
          {
            since: '2026-01-01',
            inputPerMillion: 1000,
            outputPerMillion: 3000,
            batch: { inputPerMillion: 500, outputPerMillion: 1500 },
          },
        ],
        'local:kiln-verse-1': [{ since: '2026-01-01', inputPerMillion: 500, outputPerMillion: 1000 }],
      }),
      // Batches sent a second after their first line, and followed closely: the campaign drains in minutes.
      BATCH_WINDOW_SECONDS: '1',
      BATCH_POLL_SECONDS: '0.5',
      BREAKER_FAILURE_THRESHOLD: '5',
      BREAKER_COOLDOWN_SECONDS: '2',
      // What some jobs fall back on: quick, so that the campaign drains as fast with them as without.
      LOCAL_PROVIDER_DELAY_MS: '500',
      // A hung call is given up after this, not the default 180 s: the campaign must drain in minutes.
      PROVIDER_ATTEMPT_TIMEOUT_SECONDS: '20',
      ORPHAN_JOB_GRACE_SECONDS: '20',
      ORPHAN_SWEEP_INTERVAL_SECONDS: '5',
    },
    {
      KILN_TEST_PG_BASE_URL: postgres.urlFor(''),
      KILN_TEST_TEMPORAL_ADDRESS: temporal.address,
      KILN_TEST_S3_ENDPOINT: storage.url,
      KILN_TEST_S3_REGION: minio.region,
      KILN_TEST_S3_ACCESS_KEY_ID: minio.accessKeyId,
      KILN_TEST_S3_SECRET_ACCESS_KEY: minio.secretAccessKey,
    },
  );
  webhooks.setSecret((await ensureWebhookSecret(ctx.database.db, ctx.userId)).secret);
  const spawned: { label: string; process: KilnProcess }[] = [];
  const spawn = (kind: ProcessKind) => {
    const process = spawnKilnProcess(ctx, kind);
    spawned.push({ label: `${kind}-${spawned.filter((p) => p.label.startsWith(kind)).length + 1}`, process });
    return process;
  };
  const processes: Record<ProcessKind, KilnProcess[]> = {
    api: Array.from({ length: PROCESSES_PER_KIND }, () => spawn('api')),
    worker: Array.from({ length: PROCESSES_PER_KIND }, () => spawn('worker')),
  };
  await Promise.all([...processes.api, ...processes.worker].map((process) => process.ready));

  return {
    ctx,
    postgres,
    storage,
    images,
    chat,
    batches,
    webhooks,
    processes,
    everyProcess: () => spawned.map(({ label, process }) => ({ label, output: process.output() })),
    apiUrls: () =>
      processes.api
        .filter((process) => process.child.exitCode === null && process.child.signalCode === null)
        .flatMap((process) => apiUrlOf(process) ?? []),
    async replace(kind, slot, signal, downMs) {
      const old = processes[kind][slot]!;
      const exited = new Promise((resolve) => old.child.once('exit', resolve));
      old.child.kill(signal);
      await exited;
      await new Promise((resolve) => setTimeout(resolve, downMs));
      // Not awaited: the schedule goes on while it boots, as an orchestrator's would.
      processes[kind][slot] = spawn(kind);
    },
    async restartTemporal(downMs) {
      await temporal.stop();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      temporal = await startTemporalDevServer(temporalOptions);
    },
    async stop() {
      await ctx.cleanup();
      await Promise.allSettled([
        images.close(),
        chat.close(),
        batches.close(),
        webhooks.close(),
        temporal.stop(),
        postgres.stop(),
      ]);
      await new Promise((resolve) => router.close(resolve));
      await Promise.allSettled([storage.close(), minio.stop()]);
      await rm(temporalDir, { recursive: true, force: true });
    },
  };
}

import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { renderPromptPng } from '../../src/providers/png-renderer.js';

/** How the fake answers a submit. */
export type FakeReplicateBehaviour =
  /** The prediction runs its course and succeeds. */
  | 'ok'
  /** 429 with Retry-After; no prediction is created. */
  | 'rate_limited'
  /** 500; no prediction is created. */
  | 'server_error'
  /** The prediction runs, then fails with a model error about its input. */
  | 'fail'
  /** The prediction runs, then the safety checker rejects its output. */
  | 'nsfw';

export type FakePredictionStatus = 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled';

/** A prediction as the fake holds it, status as of now. */
export interface FakePredictionView {
  id: string;
  status: FakePredictionStatus;
  input: PredictionInput;
}

export interface FakeReplicateServer {
  /** Base URL ending in `/v1`. */
  url: string;
  apiToken: string;
  /** Submits that created a prediction. */
  submits(): number;
  /** Authorised `GET /predictions/{id}` requests, found or not. */
  polls(): number;
  /** Authorised cancel requests, found or not. */
  cancels(): number;
  predictions(): FakePredictionView[];
  /** The answer for the next `times` submits; after those, `ok`. */
  queueBehaviour(behaviour: FakeReplicateBehaviour, times?: number): void;
  /** The next `times` polls answer 503, as a Replicate having a bad moment does; the predictions run on. */
  failPolls(times: number): void;
  /** How long predictions submitted from now on take from `starting` to their end. */
  setDurationMs(ms: number): void;
  /** Stops listening and drops every open connection. */
  close(): Promise<void>;
}

export interface FakeReplicateServerOptions {
  apiToken?: string;
  /** Defaults to 300 ms. */
  durationMs?: number;
  /** What a `rate_limited` answer puts in Retry-After; defaults to 3. */
  retryAfterSeconds?: number;
}

/** The SDXL model's inputs that the fake reads; the real model has the same defaults. */
const predictionBody = z.object({
  input: z.object({
    prompt: z.string().min(1),
    width: z.number().int().min(128).max(1024).default(1024),
    height: z.number().int().min(128).max(1024).default(1024),
    seed: z.number().int().optional(),
  }),
});
type PredictionInput = z.infer<typeof predictionBody>['input'];

interface FakePrediction {
  id: string;
  input: PredictionInput;
  outcome: 'ok' | 'fail' | 'nsfw';
  createdAt: number;
  durationMs: number;
  canceledAt?: number;
}

const MODEL = 'stability-ai/sdxl';
const STEPS = 20;
/** The share of the duration spent `starting` (booting, in the queue) before any step runs. */
const STARTING_SHARE = 0.2;
const FAILURES = {
  fail: 'ValueError: prompt is longer than the text encoder accepts (77 tokens)',
  nsfw: 'NSFW content detected. Try running it again, or try a different prompt.',
} as const;

/** Replicate's ids: 26 characters of lowercase base32. */
function predictionId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return Array.from(randomBytes(26), (byte) => alphabet[byte % 32]).join('');
}

/** A tqdm bar the way the model's logs print one. */
function tqdmLine(step: number): string {
  const percent = Math.floor((step / STEPS) * 100);
  const bar = '█'.repeat(Math.floor(percent / 10)).padEnd(10, ' ');
  return `${String(percent).padStart(3)}%|${bar}| ${step}/${STEPS} [00:0${step % 10}<00:05,  4.12it/s]`;
}

/** What the model has printed once `steps` steps are done; nothing while it is still starting. */
function logsAfter(input: PredictionInput, steps: number): string {
  if (steps < 0) return '';
  const bars = Array.from({ length: steps + 1 }, (_, step) => tqdmLine(step));
  const header = [`Using seed: ${input.seed ?? 0}`, `Prompt: ${input.prompt}`, 'txt2img mode'];
  return [...header, ...bars, ''].join('\n');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Replicate's problem+json error shape. */
function sendProblem(res: ServerResponse, status: number, title: string, detail: string) {
  res.writeHead(status, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ title, detail, status }));
}

function sendNotFound(res: ServerResponse) {
  sendProblem(res, 404, 'Not found', 'The requested resource could not be found.');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export async function startFakeReplicateServer(
  options: FakeReplicateServerOptions = {},
): Promise<FakeReplicateServer> {
  const apiToken = options.apiToken ?? `r8_fake${randomUUID().replaceAll('-', '')}`;
  const predictions = new Map<string, FakePrediction>();
  const queue: FakeReplicateBehaviour[] = [];
  const counts = { submits: 0, polls: 0, cancels: 0 };
  let pollsToFail = 0;
  let durationMs = options.durationMs ?? 300;
  let origin = '';

  /** Status and logs as of now; a canceled prediction is frozen where the cancel found it. */
  function stateOf(prediction: FakePrediction) {
    const at = Math.min(Date.now(), prediction.canceledAt ?? Infinity);
    const share = (at - prediction.createdAt) / prediction.durationMs;
    const steps = Math.min(STEPS, Math.floor(((share - STARTING_SHARE) / (1 - STARTING_SHARE)) * STEPS));
    let status: FakePredictionStatus = share < STARTING_SHARE ? 'starting' : 'processing';
    if (prediction.canceledAt !== undefined) status = 'canceled';
    else if (share >= 1) status = prediction.outcome === 'ok' ? 'succeeded' : 'failed';
    return { status, logs: logsAfter(prediction.input, steps) };
  }

  function toJson(prediction: FakePrediction) {
    const { status, logs } = stateOf(prediction);
    const apiUrl = `${origin}/v1/predictions/${prediction.id}`;
    const outcome = prediction.outcome;
    return {
      id: prediction.id,
      model: MODEL,
      version: '7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc',
      input: prediction.input,
      logs,
      output: status === 'succeeded' ? [`${origin}/delivery/${prediction.id}/out-0.png`] : null,
      data_removed: false,
      error: status === 'failed' && outcome !== 'ok' ? FAILURES[outcome] : null,
      status,
      created_at: new Date(prediction.createdAt).toISOString(),
      urls: { get: apiUrl, cancel: `${apiUrl}/cancel`, web: `https://replicate.com/p/${prediction.id}` },
    };
  }

  async function submit(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = predictionBody.safeParse(await readJson(req).catch(() => undefined));
    if (!parsed.success) {
      return sendProblem(res, 422, 'Input validation failed', parsed.error.issues[0]?.message ?? 'invalid');
    }
    const behaviour = queue.shift() ?? 'ok';
    if (behaviour === 'rate_limited') {
      const seconds = options.retryAfterSeconds ?? 3;
      res.setHeader('retry-after', String(seconds));
      const detail = `Request was throttled. Expected available in ${seconds} seconds.`;
      return sendProblem(res, 429, 'Request was throttled', detail);
    }
    if (behaviour === 'server_error') return sendProblem(res, 500, 'Internal Server Error', 'Server Error');
    const id = predictionId();
    const prediction = {
      id,
      input: parsed.data.input,
      outcome: behaviour,
      createdAt: Date.now(),
      durationMs,
    };
    predictions.set(id, prediction);
    counts.submits++;
    sendJson(res, 201, toJson(prediction));
  }

  function cancel(res: ServerResponse, prediction: FakePrediction): void {
    const { status } = stateOf(prediction);
    if (status === 'starting' || status === 'processing') prediction.canceledAt = Date.now();
    sendJson(res, 200, toJson(prediction));
  }

  function serveOutput(res: ServerResponse, prediction: FakePrediction | undefined): void {
    if (!prediction || stateOf(prediction).status !== 'succeeded') return sendNotFound(res);
    const { prompt, seed = 0, width, height } = prediction.input;
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end(Buffer.from(renderPromptPng({ prompt, seed, width, height })));
  }

  function predictionRoute(res: ServerResponse, method: string | undefined, id: string, isCancel: boolean) {
    const prediction = predictions.get(id);
    if (method === 'GET' && !isCancel) {
      counts.polls++;
      if (pollsToFail > 0) {
        pollsToFail--;
        return sendProblem(res, 503, 'Service Unavailable', 'Replicate is having a bad moment');
      }
      if (prediction) return sendJson(res, 200, toJson(prediction));
    }
    if (method === 'POST' && isCancel) {
      counts.cancels++;
      if (prediction) return cancel(res, prediction);
    }
    sendNotFound(res);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', origin).pathname;
    const output = /^\/delivery\/([a-z2-7]+)\/out-0\.png$/.exec(path);
    // Output files are public, as on Replicate's CDN; everything under /v1 wants the token.
    if (req.method === 'GET' && output) return serveOutput(res, predictions.get(output[1] ?? ''));
    if (req.headers.authorization !== `Bearer ${apiToken}`) {
      const detail = 'You did not pass a valid authentication token';
      return sendJson(res, 401, { title: 'Unauthenticated', detail, status: 401 });
    }
    if (req.method === 'POST' && path === `/v1/models/${MODEL}/predictions`) return submit(req, res);
    const [, id, cancelSuffix] = /^\/v1\/predictions\/([^/]+)(\/cancel)?$/.exec(path) ?? [];
    if (id === undefined) return sendNotFound(res);
    predictionRoute(res, req.method, id, cancelSuffix !== undefined);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendProblem(res, 500, 'Internal Server Error', String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${origin}/v1`,
    apiToken,
    submits: () => counts.submits,
    polls: () => counts.polls,
    cancels: () => counts.cancels,
    predictions: () =>
      [...predictions.values()].map((p) => ({ id: p.id, status: stateOf(p).status, input: p.input })),
    queueBehaviour(behaviour, times = 1) {
      for (let i = 0; i < times; i++) queue.push(behaviour);
    },
    setDurationMs(ms) {
      durationMs = ms;
    },
    failPolls(times) {
      pollsToFail = times;
    },
    async close() {
      const closed = new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
      server.closeAllConnections();
      await closed;
    },
  };
}

import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderPromptPng } from '../../src/providers/png-renderer.js';
import {
  FAILED_RESULTS,
  FAKE_FAL_MODELS,
  fluxInputSchema,
  jpegLike,
  modelError,
  runnerLogs,
  sizeOf,
  validationFailure,
  type FluxInput,
} from './fal-wire.js';

/** How the fake answers a submit, or what the request it queues ends in. */
export type FakeFalBehaviour =
  /** The request waits its turn, runs, and its result is the image. */
  | 'ok'
  /** 429 with Retry-After; nothing is queued. */
  | 'rate_limited'
  /** 500 `internal_error`; nothing is queued. */
  | 'server_error'
  /** The submit is never answered. */
  | 'hang'
  /** 422: the model refuses the input at submit; nothing is queued. */
  | 'invalid_input'
  /** The request runs; its image is a JPEG whatever was asked, as from an endpoint without `output_format`. */
  | 'jpeg'
  /** The request runs; its result is the model's 422 `content_policy_violation`. */
  | 'content_policy'
  /** The request runs; the safety checker flags the image (`has_nsfw_concepts: [true]`). */
  | 'nsfw'
  /** The request runs; its result is 503 `runner_disconnected`, fal's own retries spent. */
  | 'runner_error'
  /** The request runs; its result is 504 `request_timeout`. */
  | 'request_timeout';

type Outcome = Exclude<FakeFalBehaviour, 'rate_limited' | 'server_error' | 'hang' | 'invalid_input'>;
export type FakeFalState = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' | 'removed';

/** A queued request as the fake holds it, state as of now. */
export interface FakeFalRequestView {
  id: string;
  model: string;
  state: FakeFalState;
  canceled: boolean;
  input: FluxInput;
}

/** How long requests submitted from now on wait and run, and how many requests are ahead of each. */
export interface FakeFalTiming {
  queuedMs: number;
  runningMs: number;
  ahead: number;
}

export interface FakeFalServer {
  /** The queue's base URL, as `https://queue.fal.run` is fal's. */
  url: string;
  apiKey: string;
  /** Submits that queued a request: each one is paid for at fal. */
  submits(): number;
  /** Authorised status polls, found or not. */
  polls(): number;
  /** Authorised cancels, found or not. */
  cancels(): number;
  requests(): FakeFalRequestView[];
  /** The answer for the next `times` submits; after those, `ok`. */
  queueBehaviour(behaviour: FakeFalBehaviour, times?: number): void;
  setTiming(timing: Partial<FakeFalTiming>): void;
  /** Stops listening and drops every open connection. */
  close(): Promise<void>;
}

export interface FakeFalServerOptions {
  apiKey?: string;
  /** Defaults to no queue and 300 ms of running. */
  timing?: Partial<FakeFalTiming>;
  /** What a `rate_limited` answer puts in Retry-After; defaults to 3. */
  retryAfterSeconds?: number;
}

interface FakeRequest extends FakeFalTiming {
  id: string;
  model: string;
  input: FluxInput;
  outcome: Outcome;
  createdAt: number;
  canceledAt?: number;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export async function startFakeFalServer(options: FakeFalServerOptions = {}): Promise<FakeFalServer> {
  const apiKey = options.apiKey ?? `${randomUUID()}:${randomBytes(16).toString('hex')}`;
  const requests = new Map<string, FakeRequest>();
  const behaviours: FakeFalBehaviour[] = [];
  const counts = { submits: 0, polls: 0, cancels: 0 };
  let timing: FakeFalTiming = { queuedMs: 0, runningMs: 300, ahead: 0, ...options.timing };
  let origin = '';

  /** State as of now: one canceled in the queue is removed, one canceled while running completes at once. */
  function stateOf(request: FakeRequest): { state: FakeFalState; elapsed: number } {
    const at = Math.min(Date.now(), request.canceledAt ?? Infinity);
    const elapsed = at - request.createdAt;
    let state: FakeFalState = 'COMPLETED';
    if (elapsed < request.queuedMs) state = request.canceledAt === undefined ? 'IN_QUEUE' : 'removed';
    else if (elapsed < request.queuedMs + request.runningMs && request.canceledAt === undefined) {
      state = 'IN_PROGRESS';
    }
    return { state, elapsed };
  }

  const formatOf = (request: FakeRequest) =>
    request.outcome === 'jpeg' ? 'jpeg' : request.input.output_format;

  function urlsOf(request: FakeRequest) {
    const base = `${origin}/${request.model.split('/').slice(0, 2).join('/')}/requests/${request.id}`;
    return { response_url: base, status_url: `${base}/status`, cancel_url: `${base}/cancel` };
  }

  function statusOf(request: FakeRequest, withLogs: boolean) {
    const { state, elapsed } = stateOf(request);
    // Those ahead leave evenly while the request waits.
    const position = () => Math.ceil(request.ahead * (1 - elapsed / request.queuedMs));
    const running = (elapsed - request.queuedMs) / request.runningMs;
    return {
      status: state,
      request_id: request.id,
      ...urlsOf(request),
      ...(state === 'IN_QUEUE' ? { queue_position: position() } : {}),
      logs:
        withLogs && state !== 'IN_QUEUE' ? runnerLogs(running, request.createdAt + request.queuedMs) : null,
      metrics: state === 'COMPLETED' ? { inference_time: request.runningMs / 1000 } : {},
    };
  }

  async function submit(req: IncomingMessage, res: ServerResponse, model: string): Promise<void> {
    if (!FAKE_FAL_MODELS.has(model))
      return sendJson(res, 404, { detail: `Application '${model}' not found` });
    const parsed = fluxInputSchema.safeParse(await readJson(req).catch(() => undefined));
    if (!parsed.success) return sendJson(res, 422, validationFailure(parsed.error.issues));
    const behaviour = behaviours.shift() ?? 'ok';
    if (behaviour === 'hang') return;
    if (behaviour === 'invalid_input') {
      const refusal = modelError('prompt', 'The prompt is too long for the text encoder', 'value_error');
      return sendJson(res, 422, { detail: [refusal] });
    }
    if (behaviour === 'rate_limited') {
      const retryAfter = String(options.retryAfterSeconds ?? 3);
      return sendJson(res, 429, { detail: 'Too many concurrent requests' }, { 'retry-after': retryAfter });
    }
    if (behaviour === 'server_error') {
      const headers = { 'x-fal-error-type': 'internal_error' };
      return sendJson(res, 500, { detail: 'Internal error', error_type: 'internal_error' }, headers);
    }
    const request = {
      id: randomUUID(),
      model,
      input: parsed.data,
      outcome: behaviour,
      createdAt: Date.now(),
      ...timing,
    };
    requests.set(request.id, request);
    counts.submits++;
    sendJson(res, 200, {
      status: 'IN_QUEUE',
      request_id: request.id,
      ...urlsOf(request),
      queue_position: request.ahead,
    });
  }

  function result(res: ServerResponse, request: FakeRequest): void {
    if (stateOf(request).state !== 'COMPLETED') {
      return sendJson(res, 400, { detail: 'Request is still in progress' });
    }
    const outcome = request.canceledAt === undefined ? request.outcome : 'canceled';
    if (outcome !== 'ok' && outcome !== 'nsfw' && outcome !== 'jpeg') {
      const [status, body] = FAILED_RESULTS[outcome];
      const headers: Record<string, string> = {};
      if ('error_type' in body) headers['x-fal-error-type'] = String(body.error_type);
      return sendJson(res, status, body, headers);
    }
    const { width, height } = sizeOf(request.input);
    const format = formatOf(request);
    const image = {
      url: `${origin}/files/${request.id}.${format}`,
      width,
      height,
      content_type: `image/${format}`,
    };
    sendJson(res, 200, {
      images: [image],
      timings: { inference: request.runningMs / 1000 },
      seed: request.input.seed ?? 0,
      has_nsfw_concepts: [outcome === 'nsfw'],
      prompt: request.input.prompt,
    });
  }

  function cancel(res: ServerResponse, request: FakeRequest): void {
    const { state } = stateOf(request);
    if (state === 'COMPLETED' || state === 'removed')
      return sendJson(res, 400, { status: 'ALREADY_COMPLETED' });
    request.canceledAt = Date.now();
    sendJson(res, 202, { status: 'CANCELLATION_REQUESTED' });
  }

  function serveFile(res: ServerResponse, request: FakeRequest | undefined, format: string): void {
    if (!request || formatOf(request) !== format) return sendJson(res, 404, { detail: 'Not Found' });
    const { width, height } = sizeOf(request.input);
    const { prompt, seed = 0 } = request.input;
    res.writeHead(200, { 'content-type': `image/${format}` });
    res.end(format === 'png' ? Buffer.from(renderPromptPng({ prompt, seed, width, height })) : jpegLike());
  }

  function requestRoute(req: IncomingMessage, res: ServerResponse, app: string, id: string, action: string) {
    const request = requests.get(id);
    const known = request && request.model.startsWith(`${app}/`) ? request : undefined;
    const found = known && stateOf(known).state !== 'removed' ? known : undefined;
    if (req.method === 'GET' && action === '/status') {
      counts.polls++;
      if (found) {
        const status = statusOf(found, new URL(req.url ?? '/', origin).searchParams.get('logs') === '1');
        // 202 while the request waits or runs, 200 once its result is there.
        return sendJson(res, status.status === 'COMPLETED' ? 200 : 202, status);
      }
    }
    if (req.method === 'GET' && action === '' && found) return result(res, found);
    if (req.method === 'PUT' && action === '/cancel') {
      counts.cancels++;
      if (known) return cancel(res, known);
    }
    sendJson(res, 404, { detail: 'Request not found' });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', origin).pathname;
    // Files are public, as on fal's CDN; the queue wants the key.
    const file = /^\/files\/([0-9a-f-]+)\.(png|jpeg)$/.exec(path);
    if (req.method === 'GET' && file) return serveFile(res, requests.get(file[1]!), file[2]!);
    if (req.headers.authorization !== `Key ${apiKey}`) {
      return sendJson(res, 401, { detail: 'Invalid authentication credentials' });
    }
    const [, owner, app, id, action = ''] =
      /^\/([^/]+)\/([^/]+)\/requests\/([^/]+)(\/status|\/cancel)?$/.exec(path) ?? [];
    if (id !== undefined) return requestRoute(req, res, `${owner}/${app}`, id, action);
    if (req.method === 'POST') return submit(req, res, path.slice(1));
    sendJson(res, 404, { detail: 'Not Found' });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { detail: String(error), error_type: 'internal_error' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: origin,
    apiKey,
    submits: () => counts.submits,
    polls: () => counts.polls,
    cancels: () => counts.cancels,
    requests: () =>
      [...requests.values()].map((request) => ({
        id: request.id,
        model: request.model,
        state: stateOf(request).state,
        canceled: request.canceledAt !== undefined,
        input: request.input,
      })),
    queueBehaviour(behaviour, times = 1) {
      for (let i = 0; i < times; i++) behaviours.push(behaviour);
    },
    setTiming(changes) {
      timing = { ...timing, ...changes };
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

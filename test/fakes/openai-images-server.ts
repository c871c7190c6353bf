import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { renderPromptPng } from '../../src/providers/png-renderer.js';
import { imageFiles, type ImageFile } from './image-files.js';
import { behaviourSchedule, closeFakeServer, stillWanted } from './fake-server.js';

/** How the fake answers a request that is authorised and well formed. */
export type FakeImagesBehaviour =
  | { kind: 'ok'; delayMs?: number }
  | { kind: 'rate_limited'; retryAfterSeconds: number }
  | { kind: 'server_error'; status?: number }
  | { kind: 'hang' }
  /** After `delayMs`, as a provider that moderates the output does. */
  | { kind: 'content_policy'; delayMs?: number }
  | { kind: 'bad_request' }
  /** 200 with an empty `data` array: a reply that carries no image. */
  | { kind: 'no_image' }
  /** 200 with a real PNG of another size than asked for. */
  | { kind: 'wrong_size' }
  /** Drops the connection without answering. */
  | { kind: 'reset' }
  /**
   * 200 with `data[].url` instead of `b64_json`, as LiteLLM and older OpenAI models answer (DALL·E's
   * one-piece answer only): a link to a file this server serves as `file` says (default `png`), or
   * `unreachable`, to a port nothing listens on.
   */
  | { kind: 'url'; file?: LinkedFile };

type LinkedFile = ImageFile | 'unreachable';
/** Port 1 (tcpmux) is not served on a test machine: connecting is refused. */
const UNREACHABLE_URL = 'http://127.0.0.1:1/files/gone.png';
/** Where a `url` answer links to: the file's URL on this server, or one nothing answers at. */
type LinkTo = (file: LinkedFile, png: Buffer) => string;

const imageGenerationBody = z.object({
  model: z.string().default('dall-e-2'),
  prompt: z.string().min(1),
  n: z.number().int().min(1).max(10).default(1),
  size: z
    .string()
    .regex(/^\d+x\d+$/)
    .default('1024x1024'),
  response_format: z.enum(['url', 'b64_json']).optional(),
  stream: z.boolean().optional(),
  partial_images: z.number().int().min(0).max(3).optional(),
});

/** A request body as the fake received it, defaults applied. */
export type ImageGenerationBody = z.infer<typeof imageGenerationBody>;

export interface FakeOpenAIImagesServer {
  /** Base URL ending in `/v1`, as the OpenAI client's `baseURL` expects. */
  url: string;
  apiKey: string;
  /** Every well-formed body that reached the endpoint, in arrival order, authorised or not. */
  requests: ImageGenerationBody[];
  /** When each of `requests` arrived (Date.now()). */
  arrivals: number[];
  /** When the answer to each of `requests` ended or was abandoned (Date.now()); unset while open. */
  answeredAt: number[];
  /** Whether each of `requests` was answered in full with images: a call a real provider bills. */
  paid: boolean[];
  /** 429s sent, by the request limit or an exhausted quota. */
  rateLimitedResponses(): number;
  /** Answers every request 429 (with Retry-After) for the next `ms`, as a provider out of quota does. */
  exhaustQuota(ms: number): void;
  /** Requests received in total, or for one prompt. */
  countRequests(prompt?: string): number;
  /** Requests still open: not answered, and not abandoned by the client. */
  openRequests(): number;
  /** GETs of the image files `url` answers link to. */
  fileFetches(): number;
  /** The answer for every request once the queue is empty. */
  setBehaviour(behaviour: FakeImagesBehaviour): void;
  /** The answer for the next `times` requests, ahead of the persistent behaviour. */
  queueBehaviour(behaviour: FakeImagesBehaviour, times?: number): void;
  /** Stops listening and ends every open request, hanging ones included. */
  close(): Promise<void>;
}

export interface FakeOpenAIImagesServerOptions {
  apiKey?: string;
  behaviour?: FakeImagesBehaviour;
  /**
   * Enforces a request rate like OpenAI's: a bucket of `burst` requests refilled at `perMinute`; beyond
   * it, 429 with Retry-After. Every answer carries the `x-ratelimit-*-requests` headers.
   */
  requestLimit?: { perMinute: number; burst: number };
}

/** A token bucket: the request limit OpenAI-style providers enforce. */
function tokenBucket({ perMinute, burst }: { perMinute: number; burst: number }) {
  const perMs = perMinute / 60_000;
  let tokens = burst;
  let refilledAt = Date.now();
  const refill = () => {
    const now = Date.now();
    tokens = Math.min(burst, tokens + (now - refilledAt) * perMs);
    refilledAt = now;
  };
  return {
    /** Takes a token if there is one; the headers describe the bucket after that. */
    take(): { allowed: boolean; headers: Record<string, string> } {
      refill();
      const allowed = tokens >= 1;
      if (allowed) tokens -= 1;
      const headers: Record<string, string> = {
        'x-ratelimit-limit-requests': String(burst),
        'x-ratelimit-remaining-requests': String(Math.floor(tokens)),
        'x-ratelimit-reset-requests': `${Math.ceil((burst - tokens) / perMs)}ms`,
      };
      if (!allowed) headers['retry-after-ms'] = String(Math.ceil((1 - tokens) / perMs));
      return { allowed, headers };
    },
  };
}

function sendRateLimited(res: ServerResponse, headers: Record<string, string>) {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  sendError(res, 429, {
    message: 'Rate limit reached for images.',
    type: 'requests',
    code: 'rate_limit_exceeded',
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'x-request-id': `req_${randomUUID()}`,
    ...headers,
  });
  res.end(text);
}

/** OpenAI's error envelope. */
function sendError(
  res: ServerResponse,
  status: number,
  error: { message: string; type: string; code?: string },
) {
  sendJson(res, status, { error: { param: null, code: null, ...error } });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function sendImages(res: ServerResponse, body: ImageGenerationBody, linkTo: LinkTo, file?: LinkedFile): void {
  const [width, height] = body.size.split('x').map(Number) as [number, number];
  sendPng(res, body, width, height, linkTo, file);
}

/** The image as base64, or as a link to `file`; DALL·E links to its image unless asked for base64. */
function sendPng(
  res: ServerResponse,
  body: ImageGenerationBody,
  width: number,
  height: number,
  linkTo: LinkTo,
  file?: LinkedFile,
): void {
  const png = Buffer.from(renderPromptPng({ prompt: body.prompt, seed: 0, width, height }));
  const linksByDefault = body.model.startsWith('dall-e') && body.response_format !== 'b64_json';
  const linked = file ?? (linksByDefault ? 'png' : undefined);
  const image = linked ? { url: linkTo(linked, png) } : { b64_json: png.toString('base64') };
  sendJson(res, 200, {
    created: Math.floor(Date.now() / 1000),
    data: Array.from({ length: body.n }, () => image),
  });
}

/**
 * The GPT image models' streaming answer: `partial_images` previews, then the image, as Server-Sent
 * Events spread over `delayMs`. The previews are the final image at a lower size, enough for a client.
 */
async function streamImages(
  res: ServerResponse,
  body: ImageGenerationBody,
  delayMs: number,
  closing: AbortSignal,
  /** The final image's size; none sends the previews and ends without an image. */
  final: [number, number] | null = body.size.split('x').map(Number) as [number, number],
) {
  const png = (w: number, h: number) =>
    Buffer.from(renderPromptPng({ prompt: body.prompt, seed: 0, width: w, height: h })).toString('base64');
  const common = {
    created_at: Math.floor(Date.now() / 1000),
    size: body.size,
    quality: 'auto',
    background: 'opaque',
    output_format: 'png',
  };
  res.writeHead(200, { 'content-type': 'text/event-stream', 'x-request-id': `req_${randomUUID()}` });
  const partials = body.partial_images ?? 0;
  const send = (type: string, data: object) =>
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...common, ...data })}\n\n`);
  for (let index = 0; index < partials; index++) {
    if (!(await stillWanted(delayMs / (partials + 1), res, closing))) return;
    send('image_generation.partial_image', { partial_image_index: index, b64_json: png(64, 64) });
  }
  if (!(await stillWanted(delayMs / (partials + 1), res, closing))) return;
  if (final) send('image_generation.completed', { b64_json: png(...final), usage: { total_tokens: 0 } });
  res.end();
}

function sendContentPolicy(res: ServerResponse, model: string): void {
  const message = 'Your request was rejected as a result of our safety system.';
  if (model.startsWith('dall-e')) {
    sendError(res, 400, { message, type: 'invalid_request_error', code: 'content_policy_violation' });
  } else {
    sendError(res, 400, { message, type: 'image_generation_user_error', code: 'moderation_blocked' });
  }
}

async function answer(
  res: ServerResponse,
  body: ImageGenerationBody,
  behaviour: FakeImagesBehaviour,
  closing: AbortSignal,
  linkTo: LinkTo,
) {
  switch (behaviour.kind) {
    case 'ok':
      if (body.stream) return streamImages(res, body, behaviour.delayMs ?? 0, closing);
      if (await stillWanted(behaviour.delayMs ?? 0, res, closing)) sendImages(res, body, linkTo);
      return;
    case 'rate_limited':
      return sendRateLimited(res, { 'retry-after': String(behaviour.retryAfterSeconds) });
    case 'server_error':
      return sendError(res, behaviour.status ?? 500, {
        message: 'The server had an error.',
        type: 'server_error',
      });
    case 'hang':
      return;
    case 'content_policy':
      if (await stillWanted(behaviour.delayMs ?? 0, res, closing)) sendContentPolicy(res, body.model);
      return;
    case 'bad_request':
      return sendError(res, 400, { message: 'Invalid prompt.', type: 'invalid_request_error' });
    case 'no_image':
      if (body.stream) return streamImages(res, body, 0, closing, null);
      return sendJson(res, 200, { created: Math.floor(Date.now() / 1000), data: [] });
    case 'wrong_size':
      if (body.stream) return streamImages(res, body, 0, closing, [64, 64]);
      return sendPng(res, body, 64, 64, linkTo);
    case 'reset':
      res.socket?.destroy();
      return;
    case 'url':
      return sendImages(res, body, linkTo, behaviour.file ?? 'png');
  }
}

export async function startFakeOpenAIImagesServer(
  options: FakeOpenAIImagesServerOptions = {},
): Promise<FakeOpenAIImagesServer> {
  const apiKey = options.apiKey ?? `sk-fake-${randomUUID()}`;
  const requests: ImageGenerationBody[] = [];
  const arrivals: number[] = [];
  const answeredAt: number[] = [];
  const paid: boolean[] = [];
  const bucket = options.requestLimit ? tokenBucket(options.requestLimit) : undefined;
  let exhaustedUntil = 0;
  let rateLimited = 0;
  const behaviours = behaviourSchedule<FakeImagesBehaviour>(options.behaviour ?? { kind: 'ok' });
  const closing = new AbortController();
  const files = imageFiles();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (files.handle(req, res)) return;
    const linkTo: LinkTo = (file, png) =>
      file === 'unreachable' ? UNREACHABLE_URL : `http://${req.headers.host}${files.add(file, png)}`;
    if (req.method !== 'POST' || req.url !== '/v1/images/generations') {
      return sendError(res, 404, {
        message: `Invalid URL (${req.method} ${req.url})`,
        type: 'invalid_request_error',
      });
    }
    const parsed = imageGenerationBody.safeParse(await readJson(req).catch(() => undefined));
    if (!parsed.success) {
      return sendError(res, 400, { message: 'Invalid request body.', type: 'invalid_request_error' });
    }
    const body = parsed.data;
    const index = requests.push(body) - 1;
    arrivals.push(Date.now());
    res.once('close', () => (answeredAt[index] = Date.now()));
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      const message = 'Incorrect API key provided.';
      return sendError(res, 401, { message, type: 'invalid_request_error', code: 'invalid_api_key' });
    }
    // The GPT image models always answer in base64 and refuse the DALL·E-only parameter.
    if (!body.model.startsWith('dall-e') && body.response_format !== undefined) {
      const message = "Unknown parameter: 'response_format'.";
      return sendError(res, 400, { message, type: 'invalid_request_error', code: 'unknown_parameter' });
    }
    if (Date.now() < exhaustedUntil) {
      rateLimited += 1;
      return sendRateLimited(res, { 'retry-after-ms': String(exhaustedUntil - Date.now()) });
    }
    const limit = bucket?.take();
    if (limit && !limit.allowed) {
      rateLimited += 1;
      return sendRateLimited(res, limit.headers);
    }
    for (const [name, value] of Object.entries(limit?.headers ?? {})) res.setHeader(name, value);
    await answer(res, body, behaviours.next(), closing.signal, linkTo);
    paid[index] = res.statusCode === 200 && res.writableEnded;
  }

  let open = 0;
  const server = createServer((req, res) => {
    open += 1;
    res.once('close', () => (open -= 1));
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, { message: String(error), type: 'server_error' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    apiKey,
    requests,
    arrivals,
    answeredAt,
    paid,
    rateLimitedResponses: () => rateLimited,
    exhaustQuota(ms) {
      exhaustedUntil = Date.now() + ms;
    },
    countRequests: (prompt) =>
      requests.filter((body) => prompt === undefined || body.prompt === prompt).length,
    openRequests: () => open,
    fileFetches: files.fetched,
    setBehaviour: behaviours.set,
    queueBehaviour: behaviours.queue,
    close: () => closeFakeServer(server, closing),
  };
}

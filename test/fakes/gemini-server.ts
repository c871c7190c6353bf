import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderPromptPng } from '../../src/providers/png-renderer.js';
import {
  API_KEY_INVALID,
  answer,
  candidate,
  generateContentBody,
  IMAGE_SIZES,
  newResponseId,
  promptTokens,
  retryInfo,
  sendJson,
  sseEvent,
  statusBody,
  usageMetadata,
  type ErrorCode,
  type GenerateContentBody,
  type UsageMetadata,
} from './gemini-wire.js';
import { behaviourSchedule, closeFakeServer, stillWanted } from './fake-server.js';

/** How the fake answers a request that is authorised and well formed. */
export type FakeGeminiBehaviour =
  /**
   * The answer; a stream's chunks `delayMs` apart, an image after `delayMs`. `thoughtsTokens`: what the
   * model says it spent thinking first, in every chunk's usage, as a 2.5 model does.
   */
  | { kind: 'ok'; delayMs?: number; thoughtsTokens?: number }
  /** An error answer; a 429 says when to come back in RetryInfo and/or, as a proxy might, Retry-After. */
  | { kind: 'error'; code: ErrorCode; retryDelaySeconds?: number; retryAfterSeconds?: number }
  /** 200 with `promptFeedback.blockReason` and no candidate: the prompt itself was refused. */
  | { kind: 'prompt_blocked'; reason?: string }
  /** `afterTokens` of the reply (a stream's), then a candidate that ends with `reason` and no image. */
  | { kind: 'finish'; reason: string; afterTokens?: number }
  /** `afterTokens` of the reply, `delayMs` apart, then the connection dropped; an image request: dropped. */
  | { kind: 'cut'; afterTokens: number; delayMs?: number }
  /** `afterTokens` of the reply, then the body ends cleanly with no finishReason. */
  | { kind: 'ends_early'; afterTokens: number }
  /** `afterTokens` of the reply, then an error event inside the stream, as on a server fault. */
  | { kind: 'stream_error'; afterTokens: number }
  /** The image model answers a JPEG, which is what a Gemini model may choose to send. */
  | { kind: 'jpeg' }
  /** The image model describes the picture in words instead of drawing it. */
  | { kind: 'text_only' }
  /** A real PNG, but 512x512. */
  | { kind: 'wrong_size' }
  | { kind: 'hang' };

export interface FakeGeminiRequest {
  model: string;
  method: 'generateContent' | 'streamGenerateContent';
  body: GenerateContentBody;
  prompt: string;
  /** The `usageMetadata` of the last chunk (or the answer) sent for it: for a whole stream, the totals. */
  usage?: UsageMetadata;
}

export interface FakeGeminiServer {
  /** The base URL, as the client's `httpOptions.baseUrl` takes it: the client adds `/v1beta`. */
  url: string;
  apiKey: string;
  /** Every well-formed request that reached a model, authorised or not, in arrival order. */
  requests: FakeGeminiRequest[];
  /** When the answer to each of `requests` ended or was abandoned (Date.now()); unset while open. */
  answeredAt: number[];
  /** Requests still open: not answered, and not abandoned by the client. */
  openRequests(): number;
  /** The text the fake answers a prompt with: its tokens joined. */
  replyFor(prompt: string): string;
  setBehaviour(behaviour: FakeGeminiBehaviour): void;
  /** The answer for the next `times` requests, ahead of the persistent behaviour. */
  queueBehaviour(behaviour: FakeGeminiBehaviour, times?: number): void;
  close(): Promise<void>;
}

const PATH = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)(?:\?(.*))?$/;
/** Answers only an image model gives. */
const IMAGE_ONLY: ReadonlySet<FakeGeminiBehaviour['kind']> = new Set(['jpeg', 'text_only', 'wrong_size']);
/** A JPEG's first bytes (SOI, then a JFIF APP0 segment): enough to not be a PNG. */
const JPEG_START = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]);

function defaultReply(prompt: string): string[] {
  const words = `Gemini says of “${prompt}”: the kiln glows 🔥 at 1,200 °C — even, bright and slow.`;
  return words.match(/\S+\s*/g) ?? [words];
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function sendError(res: ServerResponse, behaviour: Extract<FakeGeminiBehaviour, { kind: 'error' }>) {
  const details = behaviour.retryDelaySeconds === undefined ? [] : [retryInfo(behaviour.retryDelaySeconds)];
  const headers =
    behaviour.retryAfterSeconds === undefined ? {} : { 'retry-after': String(behaviour.retryAfterSeconds) };
  sendJson(res, behaviour.code, statusBody(behaviour.code, undefined, details), headers);
}

/**
 * One answer or stream chunk for `request`, billed `written` reply tokens (each a word) so far. What it
 * bills is kept on the request, so a test can compare.
 */
function answerFor(
  request: FakeGeminiRequest,
  responseId: string,
  fields: object,
  { written = 0, thoughts = 0 } = {},
) {
  request.usage = usageMetadata(promptTokens(request.prompt), written, thoughts);
  return answer(request.model, responseId, fields, request.usage);
}

/** The answers an image, a text and a stream share; true when `behaviour` was one of them. */
function answeredAlike(res: ServerResponse, request: FakeGeminiRequest, behaviour: FakeGeminiBehaviour) {
  switch (behaviour.kind) {
    case 'error':
      sendError(res, behaviour);
      return true;
    case 'hang':
      return true;
    case 'prompt_blocked': {
      const feedback = { promptFeedback: { blockReason: behaviour.reason ?? 'SAFETY' } };
      const body = answerFor(request, newResponseId(), feedback);
      if (request.method === 'generateContent') sendJson(res, 200, body);
      else res.writeHead(200, { 'content-type': 'text/event-stream' }).end(sseEvent(body));
      return true;
    }
    default:
      return false;
  }
}

function imageAnswer(request: FakeGeminiRequest, behaviour: FakeGeminiBehaviour) {
  const { prompt, body } = request;
  const png = (width: number, height: number) =>
    Buffer.from(renderPromptPng({ prompt, seed: body.generationConfig?.seed ?? 0, width, height }));
  const [width, height] = IMAGE_SIZES[body.generationConfig?.imageConfig?.aspectRatio ?? '1:1'] ?? [0, 0];
  const inline = (mimeType: string, bytes: Buffer) => [
    { inlineData: { mimeType, data: bytes.toString('base64') } },
  ];
  const candidateFor = () => {
    switch (behaviour.kind) {
      case 'finish':
        return candidate(undefined, behaviour.reason);
      case 'jpeg':
        return candidate(inline('image/jpeg', JPEG_START), 'STOP');
      case 'text_only':
        return candidate([{ text: 'I can describe it instead: a kiln, glowing.' }], 'STOP');
      case 'wrong_size':
        return candidate(inline('image/png', png(512, 512)), 'STOP');
      default:
        return candidate(inline('image/png', png(width, height)), 'STOP');
    }
  };
  return answerFor(request, newResponseId(), { candidates: [candidateFor()] });
}

async function answerImage(
  res: ServerResponse,
  request: FakeGeminiRequest,
  behaviour: FakeGeminiBehaviour,
  closing: AbortSignal,
) {
  const aspectRatio = request.body.generationConfig?.imageConfig?.aspectRatio ?? '1:1';
  if (!(aspectRatio in IMAGE_SIZES)) return sendJson(res, 400, statusBody(400));
  if (answeredAlike(res, request, behaviour)) return;
  if (behaviour.kind === 'cut') return void res.socket?.destroy();
  const delayMs = behaviour.kind === 'ok' ? (behaviour.delayMs ?? 0) : 0;
  if (await stillWanted(delayMs, res, closing)) sendJson(res, 200, imageAnswer(request, behaviour));
}

/** How one stream goes: its tokens, `delayMs` apart, the last with `finishReason` if given. */
interface StreamPlan {
  tokens: string[];
  delayMs?: number;
  finishReason?: string;
  thoughtsTokens?: number;
}

/** Streams a plan's tokens, each chunk's usage counting those written so far; false when the client left. */
async function streamTokens(
  res: ServerResponse,
  request: FakeGeminiRequest,
  { tokens, delayMs = 0, finishReason, thoughtsTokens: thoughts }: StreamPlan,
  closing: AbortSignal,
  responseId: string,
): Promise<boolean> {
  for (const [index, token] of tokens.entries()) {
    if (!(await stillWanted(delayMs, res, closing))) return false;
    const finish = index === tokens.length - 1 ? finishReason : undefined;
    const fields = { candidates: [candidate([{ text: token }], finish)] };
    res.write(sseEvent(answerFor(request, responseId, fields, { written: index + 1, thoughts })));
  }
  return !res.destroyed;
}

async function answerStream(
  res: ServerResponse,
  request: FakeGeminiRequest,
  behaviour: FakeGeminiBehaviour,
  tokens: string[],
  closing: AbortSignal,
): Promise<void> {
  if (answeredAlike(res, request, behaviour)) return;
  // The image-only answers mean nothing to a text model: it answers as usual.
  const kind = IMAGE_ONLY.has(behaviour.kind) ? 'ok' : behaviour.kind;
  const responseId = newResponseId();
  const send = (plan: StreamPlan) => streamTokens(res, request, plan, closing, responseId);
  const first = (count: number) => tokens.slice(0, count);
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (kind === 'ok') {
    // Words stand in for tokens: the limit cuts the reply where a real one would.
    const limit = request.body.generationConfig?.maxOutputTokens ?? Infinity;
    const finishReason = tokens.length > limit ? 'MAX_TOKENS' : 'STOP';
    const { delayMs, thoughtsTokens } = behaviour.kind === 'ok' ? behaviour : {};
    if (await send({ tokens: first(limit), delayMs, finishReason, thoughtsTokens })) res.end();
    return;
  }
  switch (behaviour.kind) {
    case 'finish': {
      const written = first(behaviour.afterTokens ?? 0);
      if (await send({ tokens: written })) {
        const fields = { candidates: [candidate(undefined, behaviour.reason)] };
        res.end(sseEvent(answerFor(request, responseId, fields, { written: written.length })));
      }
      return;
    }
    case 'cut':
      await send({ tokens: first(behaviour.afterTokens), delayMs: behaviour.delayMs });
      res.socket?.destroy();
      return;
    case 'ends_early':
      if (await send({ tokens: first(behaviour.afterTokens) })) res.end();
      return;
    case 'stream_error':
      if (await send({ tokens: first(behaviour.afterTokens) })) res.end(sseEvent(statusBody(500)));
      return;
  }
}

/** A text model's whole answer in one piece: the stream's tokens joined. */
function answerText(
  res: ServerResponse,
  request: FakeGeminiRequest,
  behaviour: FakeGeminiBehaviour,
  tokens: string[],
) {
  if (answeredAlike(res, request, behaviour)) return;
  const fields = { candidates: [candidate([{ text: tokens.join('') }], 'STOP')] };
  sendJson(res, 200, answerFor(request, newResponseId(), fields, { written: tokens.length }));
}

export interface FakeGeminiServerOptions {
  behaviour?: FakeGeminiBehaviour;
  /** Tokens of the reply to a prompt. Default: a sentence about the prompt with non-ASCII text in it. */
  reply?: (prompt: string) => string[];
}

export async function startFakeGeminiServer(
  options: FakeGeminiServerOptions = {},
): Promise<FakeGeminiServer> {
  const apiKey = `AIza-fake-${randomUUID()}`;
  const reply = options.reply ?? defaultReply;
  const requests: FakeGeminiRequest[] = [];
  const answeredAt: number[] = [];
  const behaviours = behaviourSchedule<FakeGeminiBehaviour>(options.behaviour ?? { kind: 'ok' });
  const closing = new AbortController();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = PATH.exec(req.url ?? '');
    if (req.method !== 'POST' || !path) return sendJson(res, 404, statusBody(404));
    const [, model = '', method] = path;
    const parsed = generateContentBody.safeParse(await readJson(req).catch(() => undefined));
    if (!parsed.success) return sendJson(res, 400, statusBody(400, `Invalid JSON payload received.`));
    const prompt = parsed.data.contents.flatMap((content) => content.parts.map((part) => part.text)).join('');
    const request = { model, method: method as FakeGeminiRequest['method'], body: parsed.data, prompt };
    const index = requests.push(request) - 1;
    res.once('close', () => (answeredAt[index] = Date.now()));
    const key = req.headers['x-goog-api-key'] ?? new URLSearchParams(path[3]).get('key');
    if (key === undefined || key === null) {
      const message = "Method doesn't allow unregistered callers. Please use API Key.";
      return sendJson(res, 403, statusBody(403, message));
    }
    if (key !== apiKey) return sendJson(res, 400, API_KEY_INVALID);
    if (!model.startsWith('gemini-')) {
      return sendJson(res, 404, statusBody(404, `models/${model} is not found for API version v1beta.`));
    }
    const behaviour = behaviours.next();
    const asksForImage = request.body.generationConfig?.responseModalities?.includes('IMAGE') ?? false;
    if (!model.includes('-image') && asksForImage) {
      const message = 'Model does not support the requested response modalities: image';
      return sendJson(res, 400, statusBody(400, message));
    }
    if (model.includes('-image')) {
      if (method === 'generateContent') return answerImage(res, request, behaviour, closing.signal);
      return sendJson(res, 400, statusBody(400, 'The fake does not stream images.'));
    }
    if (method === 'generateContent') return answerText(res, request, behaviour, reply(prompt));
    await answerStream(res, request, behaviour, reply(prompt), closing.signal);
  }

  let open = 0;
  const server = createServer((req, res) => {
    open += 1;
    res.once('close', () => (open -= 1));
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, statusBody(500, String(error)));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    answeredAt,
    openRequests: () => open,
    replyFor: (prompt) => reply(prompt).join(''),
    setBehaviour: behaviours.set,
    queueBehaviour: behaviours.queue,
    close: () => closeFakeServer(server, closing),
  };
}

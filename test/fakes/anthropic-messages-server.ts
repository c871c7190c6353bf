import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { behaviourSchedule, closeFakeServer } from './fake-server.js';

/** How the fake answers an authorised, well-formed streaming request. */
export type FakeMessagesBehaviour =
  /** Streams the reply token by token, `tokenDelayMs` apart. */
  | { kind: 'ok'; tokenDelayMs?: number }
  /** Streams `afterTokens` tokens, `tokenDelayMs` apart, then drops the connection. */
  | { kind: 'cut'; afterTokens: number; tokenDelayMs?: number }
  /** Streams `afterTokens` tokens, then ends the body cleanly with no message_delta and no message_stop. */
  | { kind: 'ends_early'; afterTokens: number }
  /** Streams `afterTokens` tokens, then an `error` event, as Anthropic does when it overloads mid-reply. */
  | { kind: 'stream_error'; afterTokens: number; type?: 'overloaded_error' | 'api_error' }
  /** Streams a few tokens, then stops with `stop_reason: refusal`, as the safety classifiers do. */
  | { kind: 'refusal'; category?: string }
  /** A whole message with no content block in it. */
  | { kind: 'empty' }
  /** An error before any stream, as the API sends it: `{"type":"error","error":{…},"request_id"}`. */
  | { kind: 'error'; status: number; type: string; retryAfterSeconds?: number; errorCode?: string }
  /** A proxy's error page in front of the API: the status, and a body that is not Anthropic's. */
  | { kind: 'proxy_error'; status: number }
  /** Takes the request and never answers. */
  | { kind: 'hang' };

const messagesBody = z.object({
  model: z.string().min(1),
  max_tokens: z.number().int().min(1),
  messages: z
    .array(
      z.object({ role: z.enum(['user', 'assistant']), content: z.union([z.string(), z.array(z.unknown())]) }),
    )
    .min(1),
  stream: z.boolean().optional(),
});

export type MessagesBody = z.infer<typeof messagesBody>;

/** A message's `usage`, as the stream reports it. */
export interface MessagesUsage {
  input_tokens: number;
  output_tokens: number;
}

export interface FakeAnthropicServer {
  /** Base URL without `/v1`, as the Anthropic client's `baseURL` expects. */
  url: string;
  apiKey: string;
  requests: MessagesBody[];
  /** The headers each of `requests` came with. */
  headers: IncomingHttpHeaders[];
  /** Whether each of `requests` was streamed to its end: a message a real provider bills in full. */
  paid: boolean[];
  /**
   * The usage the stream of each of `requests` reported, its output as of the last count sent
   * (message_delta's, once one came); unset for a request that got no stream.
   */
  usage: MessagesUsage[];
  /** When each of `requests` closed, answered or abandoned. */
  closedAt: number[];
  /** Requests whose connection is still open. */
  openRequests(): number;
  /** The reply the fake streams for a prompt: its tokens joined. */
  replyFor(prompt: string): string;
  /** The `request-id` of the last answer, success or error. */
  lastRequestId(): string | undefined;
  setBehaviour(behaviour: FakeMessagesBehaviour): void;
  /** The answer for the next `times` requests, ahead of the persistent behaviour. */
  queueBehaviour(behaviour: FakeMessagesBehaviour, times?: number): void;
  close(): Promise<void>;
}

export interface FakeAnthropicServerOptions {
  behaviour?: FakeMessagesBehaviour;
  /** Tokens of the reply to a prompt. Default: a sentence about the prompt with non-ASCII text in it. */
  reply?: (prompt: string) => string[];
  /** What the rate-limit headers of every answer say the window holds. Default 4000 requests. */
  requestLimit?: number;
}

/** Multi-byte and astral characters on purpose: offsets count UTF-16 units, and must not tear them. */
function defaultReply(prompt: string): string[] {
  const words = `Claude on “${prompt}”: the glaze runs 🔥 at 1,260 °C — cone ${prompt.length}.`;
  return words.match(/\S+\s*/g) ?? [words];
}

/** Ids shaped like Anthropic's: `req_…`, `msg_…`. */
const anthropicId = (prefix: string) => `${prefix}_${randomUUID().replaceAll('-', '')}`;

function sseEvent(type: string, payload: object): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...payload })}\n\n`;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** Prompt text, whether the last message's content is a string or text blocks. */
function promptOf(body: MessagesBody): string {
  const content = body.messages.at(-1)?.content ?? '';
  if (typeof content === 'string') return content;
  return content.map((block) => (block as { text?: string }).text ?? '').join('');
}

/** The API's own `anthropic-ratelimit-requests-*` trio: the window refills fully a minute from now. */
function rateLimitHeaders(limit: number, used: number): Record<string, string> {
  return {
    'anthropic-ratelimit-requests-limit': String(limit),
    'anthropic-ratelimit-requests-remaining': String(Math.max(0, limit - used)),
    'anthropic-ratelimit-requests-reset': new Date(Date.now() + 60_000).toISOString(),
  };
}

export async function startFakeAnthropicServer(
  options: FakeAnthropicServerOptions = {},
): Promise<FakeAnthropicServer> {
  const apiKey = `sk-ant-fake-${randomUUID()}`;
  const reply = options.reply ?? defaultReply;
  const limit = options.requestLimit ?? 4000;
  const requests: MessagesBody[] = [];
  const headers: IncomingHttpHeaders[] = [];
  const paid: boolean[] = [];
  const usage: MessagesUsage[] = [];
  const closedAt: number[] = [];
  const behaviours = behaviourSchedule<FakeMessagesBehaviour>(options.behaviour ?? { kind: 'ok' });
  let lastRequestId: string | undefined;
  let open = 0;
  const closing = new AbortController();

  function sendError(
    res: ServerResponse,
    status: number,
    error: { type: string; message: string; errorCode?: string },
    extra: Record<string, string> = {},
  ) {
    lastRequestId = anthropicId('req');
    const details = error.errorCode ? { details: { error_code: error.errorCode } } : {};
    const body = { type: 'error', error: { type: error.type, message: error.message, ...details } };
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': lastRequestId, ...extra });
    res.end(JSON.stringify({ ...body, request_id: lastRequestId }));
  }

  /**
   * Opens the stream: headers, message_start, the text block's start and a ping, as the API orders them.
   * Returns the usage message_start reported, for the end to count on.
   */
  function startStream(res: ServerResponse, body: MessagesBody, index: number) {
    lastRequestId = anthropicId('req');
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'request-id': lastRequestId,
      ...rateLimitHeaders(limit, index + 1),
    });
    const billed: MessagesUsage = { input_tokens: promptOf(body).split(/\s+/).length + 8, output_tokens: 1 };
    usage[index] = billed;
    const message = {
      id: anthropicId('msg'),
      type: 'message',
      role: 'assistant',
      content: [],
      model: body.model,
    };
    const stop = { stop_reason: null, stop_sequence: null, stop_details: null };
    res.write(sseEvent('message_start', { message: { ...message, ...stop, usage: billed } }));
    return billed;
  }

  /** Writes text deltas until all are out or the client left; false when it left. */
  async function streamTokens(res: ServerResponse, tokens: string[], delayMs: number): Promise<boolean> {
    res.write(sseEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
    res.write(sseEvent('ping', {}));
    for (const token of tokens) {
      if (res.destroyed || closing.signal.aborted) return false;
      res.write(sseEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: token } }));
      if (delayMs > 0) await sleep(delayMs, undefined, { signal: closing.signal }).catch(() => undefined);
    }
    return !res.destroyed;
  }

  /** Closes the block and the message: stop reason and the cumulative output tokens, then message_stop. */
  function endStream(
    res: ServerResponse,
    billed: MessagesUsage,
    outputTokens: number,
    stop: object = { stop_reason: 'end_turn' },
  ) {
    billed.output_tokens = outputTokens;
    const delta = { stop_sequence: null, stop_details: null, ...stop };
    res.write(sseEvent('content_block_stop', { index: 0 }));
    res.write(sseEvent('message_delta', { delta, usage: { output_tokens: outputTokens } }));
    res.end(sseEvent('message_stop', {}));
  }

  async function answerStream(
    res: ServerResponse,
    body: MessagesBody,
    index: number,
    b: FakeMessagesBehaviour,
  ) {
    const tokens = reply(promptOf(body));
    const billed = startStream(res, body, index);
    if (b.kind === 'ok') {
      if (!(await streamTokens(res, tokens, b.tokenDelayMs ?? 0))) return false;
      endStream(res, billed, tokens.length);
      return true;
    }
    if (b.kind === 'cut') {
      await streamTokens(res, tokens.slice(0, b.afterTokens), b.tokenDelayMs ?? 0);
      res.socket?.destroy();
    } else if (b.kind === 'ends_early') {
      await streamTokens(res, tokens.slice(0, b.afterTokens), 0);
      res.end();
    } else if (b.kind === 'stream_error') {
      await streamTokens(res, tokens.slice(0, b.afterTokens), 0);
      const type = b.type ?? 'overloaded_error';
      const message = type === 'overloaded_error' ? 'Overloaded' : 'Internal server error';
      res.end(sseEvent('error', { error: { type, message } }));
    } else if (b.kind === 'refusal') {
      await streamTokens(res, tokens.slice(0, 2), 0);
      const details = { type: 'refusal', category: b.category ?? null, explanation: null };
      endStream(res, billed, 2, { stop_reason: 'refusal', stop_details: details });
    } else if (b.kind === 'empty') {
      res.write(
        sseEvent('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 1 } }),
      );
      res.end(sseEvent('message_stop', {}));
    }
    return false;
  }

  /** Answers with `behaviour`; true when a whole message was streamed. */
  async function answer(
    res: ServerResponse,
    body: MessagesBody,
    index: number,
    behaviour: FakeMessagesBehaviour,
  ) {
    if (behaviour.kind === 'hang') return false;
    if (behaviour.kind === 'proxy_error') {
      res.writeHead(behaviour.status, { 'content-type': 'text/html' });
      res.end(`<html><body><h1>${behaviour.status}</h1>upstream unavailable</body></html>`);
      return false;
    }
    if (behaviour.kind === 'error') {
      const retryAfter: Record<string, string> =
        behaviour.retryAfterSeconds === undefined
          ? {}
          : { 'retry-after': String(behaviour.retryAfterSeconds) };
      const message = `${behaviour.type.replaceAll('_', ' ')} (fake)`;
      sendError(
        res,
        behaviour.status,
        { type: behaviour.type, message, errorCode: behaviour.errorCode },
        retryAfter,
      );
      return false;
    }
    return answerStream(res, body, index, behaviour);
  }

  /** The API's checks before it answers: path, version header, body, key, model. */
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/v1/messages') {
      return sendError(res, 404, { type: 'not_found_error', message: `Not found: ${req.method} ${req.url}` });
    }
    if (!req.headers['anthropic-version']) {
      return sendError(res, 400, {
        type: 'invalid_request_error',
        message: 'anthropic-version: header is required',
      });
    }
    const parsed = messagesBody.safeParse(await readJson(req).catch(() => undefined));
    if (!parsed.success) {
      return sendError(res, 400, { type: 'invalid_request_error', message: parsed.error.message });
    }
    const index = requests.push(parsed.data) - 1;
    headers.push(req.headers);
    res.once('close', () => (closedAt[index] = Date.now()));
    // The API takes the key as x-api-key or as a bearer token; the SDK sends the latter.
    if (req.headers['x-api-key'] !== apiKey && req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendError(res, 401, { type: 'authentication_error', message: 'invalid x-api-key' });
    }
    if (!parsed.data.model.startsWith('claude-')) {
      return sendError(res, 404, { type: 'not_found_error', message: `model: ${parsed.data.model}` });
    }
    if (parsed.data.stream !== true) {
      return sendError(res, 400, {
        type: 'invalid_request_error',
        message: 'this fake answers streams only',
      });
    }
    paid[index] = await answer(res, parsed.data, index, behaviours.next());
  }

  const server = createServer((req, res) => {
    open += 1;
    res.once('close', () => (open -= 1));
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, { type: 'api_error', message: String(error) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    headers,
    paid,
    usage,
    closedAt,
    openRequests: () => open,
    replyFor: (prompt) => reply(prompt).join(''),
    lastRequestId: () => lastRequestId,
    setBehaviour: behaviours.set,
    queueBehaviour: behaviours.queue,
    close: () => closeFakeServer(server, closing),
  };
}

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { behaviourSchedule, closeFakeServer, serveFake } from './fake-server.js';

/** How the fake answers an authorised, well-formed streaming request. */
export type FakeChatBehaviour =
  /** Streams the reply token by token, `tokenDelayMs` apart. */
  | { kind: 'ok'; tokenDelayMs?: number }
  /** Streams `afterTokens` tokens, `tokenDelayMs` apart, then drops the connection. */
  | { kind: 'cut'; afterTokens: number; tokenDelayMs?: number }
  /** Streams `afterTokens` tokens, then ends the body cleanly with no finish_reason and no [DONE]. */
  | { kind: 'ends_early'; afterTokens: number }
  /** Streams `afterTokens` tokens, then an error inside the stream, as OpenAI does on a server fault. */
  | { kind: 'stream_error'; afterTokens: number }
  /** Streams a few tokens, then stops with `finish_reason: content_filter`. */
  | { kind: 'content_filter' }
  | { kind: 'rate_limited'; retryAfterSeconds: number };

/** A chat completion request's body, as the fake reads it (the batch fake reads its lines' bodies so). */
export const chatBody = z.object({
  model: z.string().min(1),
  messages: z.array(z.object({ role: z.string(), content: z.string() })).min(1),
  stream: z.boolean().optional(),
  max_completion_tokens: z.number().int().min(1).optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
});

export type ChatBody = z.infer<typeof chatBody>;

/** The `usage` of a stream's last chunk, as OpenAI bills a completion. */
export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface FakeOpenAIChatServer {
  /** Base URL ending in `/v1`, as the OpenAI client's `baseURL` expects. */
  url: string;
  apiKey: string;
  requests: ChatBody[];
  /** Whether each of `requests` was streamed to its end: a completion a real provider bills in full. */
  paid: boolean[];
  /**
   * The usage the fake reported for each of `requests`; unset where it reported none: not asked for
   * (`stream_options.include_usage`), or the stream never reached its end.
   */
  usage: (ChatUsage | undefined)[];
  /**
   * When the first content token of each of `requests` was written; unset until one was. Epoch ms as
   * `performance.timeOrigin + performance.now()`: sub-millisecond, and not moved by a wall-clock step.
   */
  firstTokenAt: number[];
  /** Tokens sent so far over all requests. */
  tokensSent(): number;
  /** The reply the fake streams for a prompt: its tokens joined. */
  replyFor(prompt: string): string;
  setBehaviour(behaviour: FakeChatBehaviour): void;
  /** The answer for the next `times` requests, ahead of the persistent behaviour. */
  queueBehaviour(behaviour: FakeChatBehaviour, times?: number): void;
  close(): Promise<void>;
}

export interface FakeOpenAIChatServerOptions {
  behaviour?: FakeChatBehaviour;
  /** Tokens of the reply to a prompt. Default: a sentence about the prompt with non-ASCII text in it. */
  reply?: (prompt: string) => string[];
}

/** Multi-byte and astral characters on purpose: offsets count UTF-16 units, and must not tear them. */
export function defaultReply(prompt: string): string[] {
  const words = `Here is a reply to “${prompt}”: the kiln glows 🔥 at 1,200 °C — day ${prompt.length}.`;
  return words.match(/\S+\s*/g) ?? [words];
}

/**
 * Tokens the chat format wraps a single user message in (role markers, the reply's priming), billed as
 * prompt tokens beyond the message's own.
 */
const PROMPT_OVERHEAD_TOKENS = 7;

/** The fake's tokenizer: a word of a message is a token. Deterministic, so a test can count along. */
export function promptTokens(body: ChatBody): number {
  const words = body.messages.flatMap((message) => message.content.split(/\s+/).filter(Boolean));
  return words.length + PROMPT_OVERHEAD_TOKENS;
}

/** An error as OpenAI sends one: `{ error: { message, type, param, code } }`, with a request id. */
export function sendError(
  res: ServerResponse,
  status: number,
  error: { message: string; type: string; code?: string },
) {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': `req_${randomUUID()}` });
  res.end(JSON.stringify({ error: { param: null, code: null, ...error } }));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** One streamed completion: what its chunks share, and what its usage chunk counts from. */
interface Completion {
  id: string;
  model: string;
  includeUsage: boolean;
  promptTokens: number;
}

/**
 * One `chat.completion.chunk`, as an SSE data line. A stream asked for usage has the field on every
 * chunk, null but on the extra last one.
 */
function chunkLine(completion: Completion, choices: object[], usage: ChatUsage | null = null): string {
  const chunk = {
    id: completion.id,
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: completion.model,
    choices,
    ...(completion.includeUsage ? { usage } : {}),
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** A chunk of the one choice: a piece of the reply, or its end. */
function choiceLine(completion: Completion, delta: object, finishReason: string | null): string {
  return chunkLine(completion, [{ index: 0, delta, logprobs: null, finish_reason: finishReason }]);
}

export async function startFakeOpenAIChatServer(
  options: FakeOpenAIChatServerOptions = {},
): Promise<FakeOpenAIChatServer> {
  const apiKey = `sk-fake-${randomUUID()}`;
  const reply = options.reply ?? defaultReply;
  const requests: ChatBody[] = [];
  const paid: boolean[] = [];
  const usage: (ChatUsage | undefined)[] = [];
  const firstTokenAt: number[] = [];
  const behaviours = behaviourSchedule<FakeChatBehaviour>(options.behaviour ?? { kind: 'ok' });
  let tokensSent = 0;
  const closing = new AbortController();

  /** Writes tokens until `count` are out or the client left; false when it left. */
  async function streamTokens(
    res: ServerResponse,
    completion: Completion,
    index: number,
    tokens: string[],
    delayMs: number,
  ) {
    for (const token of tokens) {
      if (res.destroyed || closing.signal.aborted) return false;
      firstTokenAt[index] ??= performance.timeOrigin + performance.now();
      res.write(choiceLine(completion, { content: token }, null));
      tokensSent += 1;
      if (delayMs > 0) await sleep(delayMs, undefined, { signal: closing.signal }).catch(() => undefined);
    }
    return !res.destroyed;
  }

  /**
   * Ends a completion that reached its finish reason: then, if asked, the usage chunk with no choices
   * (each content chunk sent is a completion token), then [DONE], as OpenAI orders them.
   */
  function end(
    res: ServerResponse,
    completion: Completion,
    index: number,
    finishReason: string,
    sent: number,
  ) {
    let usageLine = '';
    if (completion.includeUsage) {
      const { promptTokens: prompt } = completion;
      usage[index] = { prompt_tokens: prompt, completion_tokens: sent, total_tokens: prompt + sent };
      usageLine = chunkLine(completion, [], usage[index]);
    }
    res.end(`${choiceLine(completion, {}, finishReason)}${usageLine}data: [DONE]\n\n`);
  }

  async function answer(
    res: ServerResponse,
    body: ChatBody,
    index: number,
    behaviour: FakeChatBehaviour,
  ): Promise<boolean> {
    if (behaviour.kind === 'rate_limited') {
      res.setHeader('retry-after', String(behaviour.retryAfterSeconds));
      sendError(res, 429, { message: 'Rate limit reached.', type: 'requests', code: 'rate_limit_exceeded' });
      return false;
    }
    const completion: Completion = {
      id: `chatcmpl-${randomUUID()}`,
      model: body.model,
      includeUsage: body.stream_options?.include_usage === true,
      promptTokens: promptTokens(body),
    };
    const tokens = reply(body.messages.at(-1)?.content ?? '');
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-request-id': `req_${randomUUID()}` });
    res.write(choiceLine(completion, { role: 'assistant', content: '' }, null));
    if (behaviour.kind === 'ok') {
      if (!(await streamTokens(res, completion, index, tokens, behaviour.tokenDelayMs ?? 0))) return false;
      end(res, completion, index, 'stop', tokens.length);
      return true;
    } else if (behaviour.kind === 'cut') {
      const sent = tokens.slice(0, behaviour.afterTokens);
      await streamTokens(res, completion, index, sent, behaviour.tokenDelayMs ?? 0);
      res.socket?.destroy();
    } else if (behaviour.kind === 'ends_early') {
      await streamTokens(res, completion, index, tokens.slice(0, behaviour.afterTokens), 0);
      res.end();
    } else if (behaviour.kind === 'stream_error') {
      await streamTokens(res, completion, index, tokens.slice(0, behaviour.afterTokens), 0);
      res.end(
        `data: ${JSON.stringify({ error: { message: 'The server had an error.', type: 'server_error' } })}\n\n`,
      );
    } else {
      const sent = tokens.slice(0, 2);
      await streamTokens(res, completion, index, sent, 0);
      end(res, completion, index, 'content_filter', sent.length);
    }
    return false;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      return sendError(res, 404, {
        message: `Invalid URL (${req.method} ${req.url})`,
        type: 'invalid_request_error',
      });
    }
    const parsed = chatBody.safeParse(await readJson(req).catch(() => undefined));
    if (!parsed.success || parsed.data.stream !== true) {
      return sendError(res, 400, { message: 'Invalid request body.', type: 'invalid_request_error' });
    }
    const index = requests.push(parsed.data) - 1;
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendError(res, 401, {
        message: 'Incorrect API key provided.',
        type: 'invalid_request_error',
        code: 'invalid_api_key',
      });
    }
    paid[index] = await answer(res, parsed.data, index, behaviours.next());
  }

  const { server, origin } = await serveFake(handle, (res, error) =>
    sendError(res, 500, { message: String(error), type: 'server_error' }),
  );
  return {
    url: `${origin}/v1`,
    apiKey,
    requests,
    paid,
    usage,
    firstTokenAt,
    tokensSent: () => tokensSent,
    replyFor: (prompt) => reply(prompt).join(''),
    setBehaviour: behaviours.set,
    queueBehaviour: behaviours.queue,
    close: () => closeFakeServer(server, closing),
  };
}

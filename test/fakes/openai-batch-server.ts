import { randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { closeFakeServer, serveFake } from './fake-server.js';
import { batchLifecycle, type BatchLineBehaviour, type FakeBatch } from './openai-batch-lifecycle.js';
import {
  listPage,
  newBatchObject,
  nowSeconds,
  parseInputFile,
  type StoredFile,
} from './openai-batch-wire.js';
import { defaultReply, sendError, type ChatBody } from './openai-chat-server.js';

export type { BatchLineBehaviour } from './openai-batch-lifecycle.js';

export interface FakeOpenAIBatchServerOptions {
  /** The bearer key it takes. Default: a fresh one; pass the `forwardTo` fake's so one key serves both. */
  apiKey?: string;
  /** Milliseconds in `validating`. Default 0. */
  validateMs?: number;
  /** Milliseconds before each line runs, lines one after another; a function of the 0-based index. Default 0. */
  lineMs?: number | ((index: number) => number);
  /** Milliseconds in `finalizing`. Default 0. */
  finalizeMs?: number;
  /** Milliseconds in `cancelling`. Default 0. */
  cancelMs?: number;
  /** From creation to `expired` for a batch not finished by then. Default: never (OpenAI's 24 h window). */
  expireAfterMs?: number;
  /** How the endpoint answers each line. Default: `ok`. */
  lineBehaviour?: (body: ChatBody) => BatchLineBehaviour;
  /** Refuses every batch at validation with this error (`failed`, with `errors`), as OpenAI does a bad file. */
  refuseWith?: { code: string; message: string };
  /** Tokens of a line's reply. Default: the chat fake's. */
  reply?: (prompt: string) => string[];
  /** Base URL (e.g. the chat fake's `url`) whose origin takes every request for another path. */
  forwardTo?: string;
}

/** The two writes whose reply a test can lose after the fake did the work, as a dropped connection would. */
export type DroppableWrite = 'upload' | 'create_batch';

export interface FakeOpenAIBatchServer {
  /** Base URL ending in `/v1`, as the OpenAI client's `baseURL` expects. */
  url: string;
  apiKey: string;
  /** The body of each batch created: what a real bill would count batches from. */
  batchesCreated: BatchCreateBody[];
  /** The custom_id of each line that ran with a 200, in order: the lines a real bill charges. */
  linesRun: string[];
  /** The files uploaded with `POST /v1/files`, content included. */
  filesUploaded: StoredFile[];
  /** Does the next `times` such writes, then cuts the connection instead of replying. */
  dropResponse(write: DroppableWrite, times?: number): void;
  close(): Promise<void>;
}

/** A `POST /v1/batches` body, as the fake takes it (chat completions only). */
const createBatchBody = z.object({
  input_file_id: z.string(),
  endpoint: z.literal('/v1/chat/completions'),
  completion_window: z.literal('24h'),
  metadata: z.record(z.string(), z.string()).nullish(),
});

export type BatchCreateBody = z.infer<typeof createBatchBody>;

/** OpenAI's only completion window. */
const DAY_MS = 24 * 3600 * 1000;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A body that is not JSON is refused like one of the wrong shape: a 400, not the fake's 500. */
function jsonOrNothing(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sendJson(res: ServerResponse, body: unknown, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': `req_${randomUUID()}` });
  res.end(JSON.stringify(body));
}

function invalid(res: ServerResponse, message: string, status = 400): void {
  sendError(res, status, { message, type: 'invalid_request_error' });
}

/** The file object as the API lists it: without the content the fake keeps. */
function fileObject({ content: _content, ...file }: StoredFile) {
  return file;
}

/** Plain HTTP proxying to the other fake: method, path, headers and body as they came, both ways. */
function forward(req: IncomingMessage, res: ServerResponse, base: string): void {
  const target = new URL(req.url ?? '/', base);
  const upstream = httpRequest(target, {
    method: req.method,
    headers: { ...req.headers, host: target.host },
  });
  upstream.on('response', (reply) => {
    res.writeHead(reply.statusCode ?? 502, reply.headers);
    reply.pipe(res);
  });
  upstream.on('error', () => res.destroy());
  // A client that leaves ends the upstream request too, as a stream's reader stopping would.
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
}

export async function startFakeOpenAIBatchServer(
  options: FakeOpenAIBatchServerOptions = {},
): Promise<FakeOpenAIBatchServer> {
  const apiKey = options.apiKey ?? `sk-fake-${randomUUID()}`;
  const { lineMs = 0 } = options;
  const closing = new AbortController();
  const files = new Map<string, StoredFile>();
  const batches = new Map<string, FakeBatch>();
  const batchesCreated: BatchCreateBody[] = [];
  const linesRun: string[] = [];
  const filesUploaded: StoredFile[] = [];
  const drops: Record<DroppableWrite, number> = { upload: 0, create_batch: 0 };

  function storeFile(filename: string, purpose: string, content: string): StoredFile {
    const id = `file-${randomUUID().replaceAll('-', '')}`;
    const bytes = Buffer.byteLength(content);
    const file: StoredFile = {
      id,
      object: 'file',
      bytes,
      created_at: nowSeconds(),
      filename,
      purpose,
      status: 'processed',
      content,
    };
    files.set(id, file);
    return file;
  }

  const lifecycle = batchLifecycle({
    timings: {
      validateMs: options.validateMs ?? 0,
      lineMs: typeof lineMs === 'number' ? () => lineMs : lineMs,
      finalizeMs: options.finalizeMs ?? 0,
      cancelMs: options.cancelMs ?? 0,
      expireAfterMs: options.expireAfterMs,
    },
    closing: closing.signal,
    lineBehaviour: options.lineBehaviour ?? (() => 'ok'),
    reply: options.reply ?? defaultReply,
    linesRun,
    storeFile,
  });

  /** Replies, or, when the test asked to lose this write's reply, cuts the connection instead. */
  function reply(res: ServerResponse, write: DroppableWrite, body: unknown): void {
    if (drops[write] > 0) {
      drops[write] -= 1;
      res.socket?.destroy();
      return;
    }
    sendJson(res, body);
  }

  async function uploadFile(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const headers = { 'content-type': req.headers['content-type'] ?? '' };
    const form = await new Response(await readBody(req), { headers }).formData().catch(() => undefined);
    const purpose = form?.get('purpose');
    const upload = form?.get('file');
    if (typeof purpose !== 'string' || !(upload instanceof Blob)) {
      return invalid(res, "A multipart body with 'purpose' and 'file' is required.");
    }
    const filename = upload instanceof File ? upload.name : 'upload';
    const file = storeFile(filename, purpose, await upload.text());
    filesUploaded.push(file);
    reply(res, 'upload', fileObject(file));
  }

  function listFiles(res: ServerResponse, query: URLSearchParams): void {
    const purpose = query.get('purpose');
    const matching = [...files.values()].filter((file) => purpose === null || file.purpose === purpose);
    const ordered = query.get('order') === 'asc' ? matching : matching.reverse();
    const page = listPage(ordered.map(fileObject), query, 10_000);
    sendJson(res, page);
  }

  function fileContent(res: ServerResponse, id: string): void {
    const file = files.get(id);
    if (!file) return invalid(res, `No such File object: ${id}`, 404);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-request-id': `req_${randomUUID()}` });
    res.end(file.content);
  }

  async function createBatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = createBatchBody.safeParse(jsonOrNothing((await readBody(req)).toString('utf8')));
    if (!body.success) return invalid(res, body.error.message);
    const input = files.get(body.data.input_file_id);
    if (!input || input.purpose !== 'batch') {
      return invalid(res, `No batch input file ${body.data.input_file_id}.`);
    }
    const { lines, errors } = parseInputFile(input.content);
    const refusal = options.refuseWith ? [{ ...options.refuseWith, param: null, line: null }] : errors;
    const expiresInMs = options.expireAfterMs ?? DAY_MS;
    const object = newBatchObject({ ...body.data, total: lines.length, expiresInMs });
    const batch: FakeBatch = { object, lines, refusal, results: [] };
    batches.set(object.id, batch);
    batchesCreated.push(body.data);
    lifecycle.start(batch);
    reply(res, 'create_batch', object);
  }

  function cancelBatch(res: ServerResponse, batch: FakeBatch): void {
    if (!lifecycle.cancel(batch)) {
      return invalid(res, `Cannot cancel a batch with status '${batch.object.status}'.`);
    }
    sendJson(res, batch.object);
  }

  function listBatches(res: ServerResponse, query: URLSearchParams): void {
    const newestFirst = [...batches.values()].map((batch) => batch.object).reverse();
    sendJson(res, listPage(newestFirst, query, 100));
  }

  function routeBatch(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    action: string | undefined,
  ): void {
    const batch = batches.get(id);
    if (!batch) return invalid(res, `No batch found with id '${id}'.`, 404);
    if (req.method === 'GET' && action === undefined) return sendJson(res, batch.object);
    if (req.method === 'POST' && action === 'cancel') return cancelBatch(res, batch);
    invalid(res, `Invalid URL (${req.method} ${req.url})`, 404);
  }

  function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> | void {
    const path = url.pathname;
    const [, batchId, batchAction] = /^\/v1\/batches\/([^/]+)(?:\/(cancel))?$/.exec(path) ?? [];
    const [, contentOf] = /^\/v1\/files\/([^/]+)\/content$/.exec(path) ?? [];
    if (req.method === 'POST' && path === '/v1/files') return uploadFile(req, res);
    if (req.method === 'GET' && path === '/v1/files') return listFiles(res, url.searchParams);
    if (req.method === 'GET' && contentOf) return fileContent(res, contentOf);
    if (req.method === 'POST' && path === '/v1/batches') return createBatch(req, res);
    if (req.method === 'GET' && path === '/v1/batches') return listBatches(res, url.searchParams);
    if (batchId) return routeBatch(req, res, batchId, batchAction);
    invalid(res, `Invalid URL (${req.method} ${path})`, 404);
  }

  /** Whether the path is one of the batch fake's own, which it answers rather than forwards. */
  const isOwnPath = (path: string) => /^\/v1\/(files|batches)(\/|$)/.test(path);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (!isOwnPath(url.pathname) && options.forwardTo) return forward(req, res, options.forwardTo);
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendError(res, 401, {
        message: 'Incorrect API key provided.',
        type: 'invalid_request_error',
        code: 'invalid_api_key',
      });
    }
    await route(req, res, url);
  }

  const { server, origin } = await serveFake(handle, (res, error) =>
    sendError(res, 500, { message: String(error), type: 'server_error' }),
  );
  return {
    url: `${origin}/v1`,
    apiKey,
    batchesCreated,
    linesRun,
    filesUploaded,
    dropResponse: (write, times = 1) => {
      drops[write] += times;
    },
    close: () => closeFakeServer(server, closing),
  };
}

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { assertErrorShape } from './harness/error-shape.js';
import type { ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/** An answer as it came off the socket. */
interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
  bodyBytes: number;
}

/** Splits a raw answer at the end of its head: the head read as Latin-1, the body as UTF-8. */
function parseRaw(bytes: Buffer): RawAnswer {
  const split = bytes.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = bytes
    .toString('latin1', 0, split < 0 ? bytes.length : split)
    .split('\r\n');
  const field = (line: string) =>
    [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()] as const;
  const body = split < 0 ? Buffer.alloc(0) : bytes.subarray(split + 4);
  return {
    status: Number(statusLine.split(' ')[1]),
    headers: new Map(lines.map(field)),
    body: body.toString(),
    bodyBytes: body.length,
  };
}

/** Writes `request` byte for byte (fetch refuses to send such headers) and reads until the server closes. */
function sendRaw(api: ApiTarget, request: Buffer): Promise<RawAnswer> {
  const { hostname, port } = new URL(api.url);
  return new Promise((resolve, reject) => {
    // Written, not ended: a client that half-closes has its request dropped unanswered.
    const socket = connect(Number(port), hostname, () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(parseRaw(Buffer.concat(chunks))));
  });
}

/** `text` as Latin-1 bytes with `byte` in place of its one `§`. */
function withByte(text: string, byte: number): Buffer {
  const [before = '', after = ''] = text.split('§');
  return Buffer.concat([Buffer.from(before, 'latin1'), Buffer.from([byte]), Buffer.from(after, 'latin1')]);
}

/** A submission whose Idempotency-Key holds `byte` between two letters; everything else is well formed. */
function submission(api: ApiTarget, byte: number): Buffer {
  const body = JSON.stringify({ kind: 'image', prompt: 'raw' });
  const head =
    `POST /v1/generations HTTP/1.1\r\nHost: kiln\r\nAuthorization: Bearer ${api.apiKey}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nIdempotency-Key: a§b\r\n`;
  return withByte(`${head}Connection: close\r\n\r\n${body}`, byte);
}

/** A WebSocket upgrade of the job stream with `byte` in a header value. */
function upgrade(api: ApiTarget, byte: number): Buffer {
  const head =
    `GET /v1/stream HTTP/1.1\r\nHost: kiln\r\nAuthorization: Bearer ${api.apiKey}\r\n` +
    'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Trace: a§b\r\n';
  return withByte(`${head}\r\n`, byte);
}

function assertJsonError(answer: RawAnswer, status: number, code: string): void {
  const context = JSON.stringify({ ...answer, headers: [...answer.headers] });
  assert.equal(answer.status, status, context);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/json/, context);
  assert.equal(Number(answer.headers.get('content-length')), answer.bodyBytes, context);
  assert.equal(assertErrorShape(JSON.parse(answer.body), context).code, code);
}

describe('requests only a raw socket can send get the JSON error shape', () => {
  let ctx: TestContext;
  let api: ApiTarget;

  before(async () => {
    ctx = await createTestContext();
    api = await startApi(ctx);
  });
  after(() => ctx.cleanup());

  // Node's parser refuses these before any route runs: NUL, the other C0 controls but HTAB, and DEL.
  for (const byte of [0x00, 0x01, 0x08, 0x0b, 0x1b, 0x7f]) {
    test(`a header value holding 0x${byte.toString(16)} is 400 bad_request, then the connection closes`, async () => {
      const answer = await sendRaw(api, submission(api, byte));
      assertJsonError(answer, 400, 'bad_request');
      assert.equal(answer.headers.get('connection'), 'close');
    });
  }

  test('the socket upgrade path answers the same', async () => {
    const answer = await sendRaw(api, upgrade(api, 0x01));
    assertJsonError(answer, 400, 'bad_request');
  });

  // The parser lets HTAB and bytes past 0x7f through: the key's own check refuses them.
  for (const byte of [0x09, 0x80, 0xff]) {
    test(`an Idempotency-Key holding 0x${byte.toString(16)} is 400 invalid_idempotency_key`, async () => {
      assertJsonError(await sendRaw(api, submission(api, byte)), 400, 'invalid_idempotency_key');
    });
  }

  test('a header section past the parser limit is 431 bad_request', async () => {
    const request = `GET /v1/me HTTP/1.1\r\nHost: kiln\r\nX-Padding: ${'x'.repeat(20_000)}\r\n\r\n`;
    assertJsonError(await sendRaw(api, Buffer.from(request)), 431, 'bad_request');
  });

  test('the API still answers after all that', async () => {
    assert.equal((await fetch(`${api.url}/healthz`)).status, 200);
  });
});

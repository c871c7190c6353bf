import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError } from './api-error.js';

/** What Node's HTTP parser reports; `reason` is llhttp's own description (`Invalid header value char`). */
type ParserError = Error & { code?: string; reason?: unknown };

/** The statuses Node's own answer gives these failures; it answers any other one 400. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};

function rawResponse(status: number, body: string): string {
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * The server's `clientError`: a request Node's parser refuses before Express sees it (a control character
 * in a header value, a header section past the limit, one too slow to arrive) is answered in the API's
 * error shape, where Node would send an empty 400. There is no response object, so the answer is written
 * on the socket, then the connection closes: the parser cannot read on past the error.
 */
export function answerClientError(error: ParserError, socket: Duplex): void {
  // Node's own handler makes the same check: an answer already under way cannot take another one.
  const answering = (socket as { _httpMessage?: { headersSent: boolean } | null })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || answering?.headersSent) {
    socket.destroy();
    return;
  }
  const status = STATUS_BY_CODE[error.code ?? ''] ?? 400;
  const reason = typeof error.reason === 'string' ? error.reason : error.message;
  const refusal = new ApiError('bad_request', `the request could not be read: ${reason}`, undefined, status);
  socket.end(rawResponse(status, JSON.stringify(refusal)), () => socket.destroy());
}

import assert from 'node:assert/strict';

export interface WireError {
  code: string;
  message: string;
  details?: unknown;
}

/** Asserts `{ error: { code, message, details? } }` with nothing else at either level; returns the error. */
export function assertErrorShape(body: unknown, context = JSON.stringify(body)): WireError {
  assert.ok(typeof body === 'object' && body !== null && 'error' in body, context);
  assert.deepEqual(Object.keys(body), ['error'], context);
  const error = body.error as Record<string, unknown>;
  const extra = Object.keys(error).filter((key) => !['code', 'message', 'details'].includes(key));
  assert.deepEqual(extra, [], context);
  assert.equal(typeof error.code, 'string', context);
  assert.ok(typeof error.message === 'string' && error.message.length > 0, context);
  return error as unknown as WireError;
}

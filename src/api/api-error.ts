import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../logger.js';
import {
  ApiErrorStatus,
  type ApiErrorCode,
  type FixedStatusCode,
  type VariableStatusCode,
} from './api-error-codes.js';
import { DEPENDENCY_RETRY_AFTER_SECONDS, unavailableDependency } from './dependency-unavailable.js';

/**
 * Every error a client sees, as a value: `{ error: { code, message, details? } }` on the wire. The
 * status comes from `ApiErrorStatus`, so a code cannot be sent with another; only a code listed in
 * `VARIABLE_STATUS_CODES` is given its status, explicitly.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;

  constructor(code: FixedStatusCode, message: string, details?: unknown);
  constructor(code: VariableStatusCode, message: string, details: unknown, status: number);
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: unknown,
    status?: number,
  ) {
    super(message);
    this.status = status ?? ApiErrorStatus[code];
  }

  toJSON(): { error: { code: ApiErrorCode; message: string; details?: unknown } } {
    const body = { code: this.code, message: this.message };
    return { error: this.details === undefined ? body : { ...body, details: this.details } };
  }
}

export const notFoundRoute: RequestHandler = (req, _res, next) => {
  next(new ApiError('not_found', `no route for ${req.method} ${req.path}`));
};

/**
 * body-parser and the router report what they refuse as errors with a 4xx `status`; the common ones
 * get a code of their own, the rest (a corrupt gzip body, an undecodable path) a generic one.
 */
function fromHttpError(error: { type?: unknown; status?: unknown }): ApiError | undefined {
  switch (error.type) {
    case 'entity.parse.failed':
      return new ApiError('malformed_json', 'request body is not valid JSON');
    case 'entity.too.large':
      return new ApiError('body_too_large', 'request body is too large');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ApiError('unsupported_media_type', 'request body encoding is not supported');
  }
  if (typeof error.status === 'number' && error.status >= 400 && error.status < 500)
    return new ApiError('bad_request', 'the request could not be read', undefined, error.status);
  return undefined;
}

/**
 * The one error middleware: known errors keep their code, a dependency that is away is a 503 with
 * Retry-After, anything else is a 500 that leaks nothing.
 */
export function errorMiddleware(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const known = error instanceof ApiError ? error : fromHttpError(error ?? {});
    if (known) {
      res.status(known.status).json(known);
      return;
    }
    const away = unavailableDependency(error);
    if (away) {
      logger.warn({ err: error, method: req.method, path: req.path }, away.message);
      res.set('Retry-After', String(DEPENDENCY_RETRY_AFTER_SECONDS));
      const refusal = new ApiError(away.code, away.message);
      res.status(refusal.status).json(refusal);
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'unhandled error');
    const internal = new ApiError('internal', 'internal error');
    res.status(internal.status).json(internal);
  };
}

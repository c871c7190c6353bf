import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../logger.js';
import { DEPENDENCY_RETRY_AFTER_SECONDS, unavailableDependency } from './dependency-unavailable.js';

/** Every error a client sees, as a value: `{ error: { code, message, details? } }` on the wire. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  toJSON(): { error: { code: string; message: string; details?: unknown } } {
    const body = { code: this.code, message: this.message };
    return { error: this.details === undefined ? body : { ...body, details: this.details } };
  }
}

export const notFoundRoute: RequestHandler = (req, _res, next) => {
  next(new ApiError(404, 'not_found', `no route for ${req.method} ${req.path}`));
};

/**
 * body-parser and the router report what they refuse as errors with a 4xx `status`; the common ones
 * get a code of their own, the rest (a corrupt gzip body, an undecodable path) a generic one.
 */
function fromHttpError(error: { type?: unknown; status?: unknown }): ApiError | undefined {
  switch (error.type) {
    case 'entity.parse.failed':
      return new ApiError(400, 'malformed_json', 'request body is not valid JSON');
    case 'entity.too.large':
      return new ApiError(413, 'body_too_large', 'request body is too large');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ApiError(415, 'unsupported_media_type', 'request body encoding is not supported');
  }
  if (typeof error.status === 'number' && error.status >= 400 && error.status < 500)
    return new ApiError(error.status, 'bad_request', 'the request could not be read');
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
      res.status(503).json(new ApiError(503, away.code, away.message));
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'unhandled error');
    res.status(500).json(new ApiError(500, 'internal', 'internal error'));
  };
}

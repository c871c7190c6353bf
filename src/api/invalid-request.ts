import type { z } from 'zod';
import { ApiError } from './api-error.js';

/** One refused part of a request: where (`prompt`, `params.size`, `(body)`, `Last-Event-ID`) and why. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * `400 invalid_request`, every one in the same shape: the message names the first refused field,
 * `details.fields` lists them all.
 */
export function invalidRequest(first: FieldError, ...more: FieldError[]): ApiError {
  return new ApiError('invalid_request', `${first.field}: ${first.message}`, { fields: [first, ...more] });
}

/** What a zod schema refused, as `invalid_request`; an issue with the input as a whole is named `root`. */
export function validationError(error: z.ZodError, root: '(body)' | '(query)'): ApiError {
  const [first = { field: root, message: 'invalid' }, ...more] = error.issues.map((issue) => ({
    field: issue.path.join('.') || root,
    message: issue.message,
  }));
  return invalidRequest(first, ...more);
}

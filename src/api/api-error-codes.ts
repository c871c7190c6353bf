/**
 * Every code the HTTP API answers an error with, and the status it is sent with: the closed set behind
 * `ApiError`, the `Error` schema of `/openapi.json` and the statuses the document lists per operation.
 */
export const ApiErrorStatus = {
  /** A body, query or header the request schema refuses; `details.fields` names each bad field. */
  invalid_request: 400,
  /** The body is not JSON at all, so there is no field to name. */
  malformed_json: 400,
  /** Submissions must carry one, or a retry could not land on the same job. */
  missing_idempotency_key: 400,
  /** Not 1–255 printable ASCII characters. */
  invalid_idempotency_key: 400,
  /** The provider makes no jobs of that kind here; `details.available` lists those that do. */
  unknown_provider: 400,
  /** The provider has no such model; `details.available` lists its models. */
  unknown_model: 400,
  /** The model cannot make that size; `details.available` lists the sizes it can. */
  unsupported_size: 400,
  /** A cursor this caller was never given. */
  invalid_cursor: 400,
  /**
   * What Node's HTTP parser, body-parser or the router refused without a code of its own (a control
   * character in a header, a corrupt gzip body, an undecodable path); sent with their 4xx status.
   */
  bad_request: 400,
  /** No valid key: the caller is not known. */
  unauthorized: 401,
  /** The job's cost is more than the user's balance; nothing was created or re-queued. */
  insufficient_credits: 402,
  /** Known, but not allowed: a user's API key on the operator API. */
  forbidden: 403,
  /** A browser origin the codec server is not configured to answer. */
  origin_not_allowed: 403,
  /** No such route, job, delivery or user, or one the caller does not own: the same answer. */
  not_found: 404,
  /** The path exists but does not take this method; the `Allow` header lists those it takes. */
  method_not_allowed: 405,
  /** A cancel of a job that has already ended. */
  job_finished: 409,
  /** The text routes are for text jobs only. */
  not_a_text_job: 409,
  /** Content exists once the job has succeeded. */
  result_not_ready: 409,
  /** Only a failed job can be retried; `details.status` is its status. */
  job_not_failed: 409,
  /** Temporal no longer keeps the run a retry would start again from. */
  history_unavailable: 409,
  /** The job is failed but its run has not closed yet; a moment later the retry can go ahead. */
  run_closing: 409,
  /** A retry of a job whose provider or model this deployment no longer offers; details name both. */
  provider_not_configured: 409,
  /** A deadline extension may only move a deadline later. */
  deadline_shortened: 409,
  /** An extension of a deadline the job was submitted without: there is none to move. */
  no_such_deadline: 409,
  /** A redelivery of a delivery that is still being attempted would send it twice. */
  delivery_pending: 409,
  /** The result was removed after its retention period; the job itself stays. */
  result_expired: 410,
  /** Past the route's body limit. */
  body_too_large: 413,
  /** Not JSON, or an encoding or charset body-parser cannot read. */
  unsupported_media_type: 415,
  /** The same key with a different request: the key's job is not this request's. */
  idempotency_key_reused: 422,
  /** A payload the codec server holds no key for, or one that fails to decrypt. */
  undecryptable_payload: 422,
  /** Past the API key's submission rate; `Retry-After` says when to try again. */
  rate_limited: 429,
  /** The API key holds as many sockets and event streams open on this API process as it may. */
  too_many_streams: 429,
  /** Anything unexpected: logged, with nothing leaked to the client. */
  internal: 500,
  /** The job database cannot be reached; `Retry-After` says when to try again. */
  database_unavailable: 503,
  /** The Temporal frontend cannot be reached; `Retry-After` says when to try again. */
  temporal_unavailable: 503,
  /** This API process is closing; the client resumes on another one. */
  shutting_down: 503,
} as const satisfies Record<string, number>;

export type ApiErrorCode = keyof typeof ApiErrorStatus;

/** All codes, in the table's order: for `z.enum` and the OpenAPI `Error` schema. */
export const API_ERROR_CODES = Object.keys(ApiErrorStatus) as [ApiErrorCode, ...ApiErrorCode[]];

/**
 * Codes whose status is not always the table's: `bad_request` passes on the 4xx the HTTP parser,
 * body-parser or the router chose (the table's 400 is the one the document lists). Every other code has
 * exactly one status.
 */
export const VARIABLE_STATUS_CODES = ['bad_request'] as const satisfies readonly ApiErrorCode[];

export type VariableStatusCode = (typeof VARIABLE_STATUS_CODES)[number];
export type FixedStatusCode = Exclude<ApiErrorCode, VariableStatusCode>;

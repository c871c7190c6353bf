/**
 * `@kiln/client`: a typed client for Kiln's HTTP API, for Node 20+ and browsers (fetch and web streams,
 * nothing else). `createKilnClient({ baseUrl, apiKey })`, then `run` a generation to its result, or
 * `submit` and `watch` it yourself.
 */
export { createKilnClient } from './kiln-client.js';
export type {
  KilnClient,
  KilnClientOptions,
  SubmitOptions,
  Submitted,
  SubmittedEnded,
} from './kiln-client.js';
export type { ImageResult, QueueUpdate, RunOptions, RunResult, TextResult, TextToken } from './run-job.js';
export type { WatchOptions } from './watch-job.js';
export { KilnApiError, KilnJobError, type KilnJobErrorCode, type UnsuccessfulJob } from './errors.js';
export { isTerminal, JOB_STATUSES } from './api-types.js';
export { describeWaiting } from './waiting-words.js';
export type * from './api-types.js';

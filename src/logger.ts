import { pino, type Logger } from 'pino';
import { activityLogBindings } from './observability/activity-log-bindings.js';
import { traceLogBindings } from './observability/trace-context.js';

export type { Logger };

/**
 * A second line of defence: callers log job ids and prompt hashes, never prompts, keys or secrets, but
 * an object logged whole (a request, an error carrying one) must not leak them either.
 */
const REDACTED_PATHS = [
  'prompt',
  '*.prompt',
  '*.request.prompt',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  'secret',
  '*.secret',
  'webhook_secret',
  '*.webhook_secret',
  'previous_webhook_secret',
  '*.previous_webhook_secret',
  'taskToken',
  '*.taskToken',
];

/**
 * JSON lines on stdout; inside an activity each line also names its job, workflow, run and attempt, and
 * inside a span (tracing on) its trace and span.
 */
export function createLogger(level: string, name: string): Logger {
  return pino({
    level,
    name,
    base: { pid: process.pid },
    mixin: () => ({ ...activityLogBindings(), ...traceLogBindings() }),
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  });
}

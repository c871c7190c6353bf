import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import type { Logger } from '../logger.js';
import { jobLogFields } from './job-log-fields.js';

const PINO_LEVEL = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/**
 * Temporal's metadata as Kiln's log fields. The activity task token is dropped: it is a capability
 * that completes the activity. `error` becomes `err` so that pino serializes its message and stack.
 */
function fieldsOf(meta: LogMetadata): Record<string, unknown> {
  const { workflowRunId, runId, error, ...rest } = meta as Record<string, unknown>;
  const fields: Record<string, unknown> = { ...rest };
  delete fields.taskToken;
  if (error !== undefined) fields.err = error;
  const run = typeof workflowRunId === 'string' ? workflowRunId : runId;
  if (typeof rest.workflowId === 'string' && typeof run === 'string') {
    const attempt = typeof rest.attempt === 'number' ? rest.attempt : undefined;
    const workflowType = typeof rest.workflowType === 'string' ? rest.workflowType : undefined;
    Object.assign(fields, jobLogFields({ workflowId: rest.workflowId, runId: run, workflowType, attempt }));
  }
  return fields;
}

/** The Temporal runtime's logger (worker, workflow and core lines) writing through pino. */
export function temporalLoggerFor(logger: Logger): TemporalLogger {
  const log = (level: LogLevel, message: string, meta: LogMetadata = {}) => {
    logger[PINO_LEVEL[level]](fieldsOf(meta), message);
  };
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}

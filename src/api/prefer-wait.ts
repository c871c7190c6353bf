import type { Response } from 'express';
import { toJob } from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import { isTerminal, type Job } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import type { JobEventHub } from './job-event-hub.js';

/**
 * The longest a submission's answer is held. A request open longer starts to meet proxies' and clients'
 * idle timeouts, and a caller that wants to follow a long job has the event stream for it.
 */
export const MAX_WAIT_SECONDS = 60;

/**
 * The `wait` preference of a `Prefer` header (RFC 7240), in seconds, capped at MAX_WAIT_SECONDS.
 * Undefined when there is none, or it is not whole seconds: a preference the server does not understand
 * is ignored, not refused.
 */
export function preferredWait(header: string | undefined): number | undefined {
  for (const preference of header?.split(',') ?? []) {
    const match = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*(;|$)/i.exec(preference);
    if (match) return Math.min(Number(match[1]), MAX_WAIT_SECONDS);
  }
  return undefined;
}

/**
 * The job once it has ended, if that happens within `seconds`; undefined when the time runs out first,
 * the caller goes away, the hub shuts down or cannot read. It listens to the job event hub (the events
 * the SSE route sends, brought by LISTEN), so nothing polls the table meanwhile.
 */
export function waitForJobEnd(
  { hub, logger }: { hub: JobEventHub; logger: Logger },
  row: JobRow,
  seconds: number,
  res: Response,
): Promise<Job | undefined> {
  if (isTerminal(row.status)) return Promise.resolve(toJob(row));
  return new Promise((resolve) => {
    let unsubscribe: (() => void) | undefined;
    let settled = false;
    const settle = (job?: Job) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      res.off('close', gone);
      unsubscribe?.();
      resolve(job);
    };
    const gone = () => settle();
    const timer = setTimeout(settle, seconds * 1000);
    res.once('close', gone);
    const onEvent = ({ job }: { job: Job }) => (isTerminal(job.status) ? settle(job) : undefined);
    hub.subscribe(row.id, row.version, { onEvent, onEnd: gone }).then(
      (stop) => (settled ? stop() : (unsubscribe = stop)),
      // The job was accepted all the same: its 202 is still the right answer.
      (error: unknown) => {
        logger.warn({ jobId: row.id, err: error }, 'waiting for the job to end failed');
        settle();
      },
    );
  });
}

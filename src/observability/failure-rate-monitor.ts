import { Gauge } from 'prom-client';
import type { Kysely } from 'kysely';
import type { FailureRatePolicy } from '../config/index.js';
import { countFinishedJobs } from '../db/fleet-stats-repository.js';
import type { Database } from '../db/schema.js';
import { recordSignalState } from '../db/signal-state-repository.js';
import type { Logger } from '../logger.js';
import { metricsRegistry } from './metrics.js';

const SIGNAL = 'job_failure_rate';

const rateGauge = new Gauge({
  name: 'kiln_job_failure_rate',
  help: 'Failed share of the jobs that ended succeeded or failed in the window, fleet-wide',
  registers: [metricsRegistry],
});

const firingGauge = new Gauge({
  name: 'kiln_job_failure_rate_high',
  help: '1 while the job failure rate is above its threshold (with enough finished jobs), else 0',
  registers: [metricsRegistry],
});

/**
 * Measures the job failure rate and flips `kiln_job_failure_rate_high`. It runs in every API and worker
 * process but counts from Postgres, not from each process's own counters: the rate is then the fleet's,
 * the same whichever process is scraped, and neither a worker that ran three jobs nor a restart that
 * emptied its counters skews it. The change is logged by the one process whose write to
 * `signal_states` flipped it, so the fleet logs each change once. Canceled and expired jobs are not
 * failures of the system: they count on neither side.
 */
export function startFailureRateMonitor(
  db: Kysely<Database>,
  logger: Logger,
  policy: FailureRatePolicy,
): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  async function check(): Promise<void> {
    const { finished, failed } = await countFinishedJobs(db, policy.windowSeconds);
    const rate = finished === 0 ? 0 : failed / finished;
    const firing = finished >= policy.minJobs && rate > policy.threshold;
    rateGauge.set(rate);
    firingGauge.set(firing ? 1 : 0);
    if (!(await recordSignalState(db, SIGNAL, firing))) return;
    const fields = { failureRate: rate, failed, finished, ...policy };
    if (firing) logger.warn(fields, 'job failure rate above threshold');
    else logger.info(fields, 'job failure rate back under threshold');
  }

  const tick = () => {
    running = check()
      .catch((error: unknown) => logger.warn({ err: error }, 'failure rate check failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, policy.checkEverySeconds * 1000).unref();
      });
  };
  tick();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

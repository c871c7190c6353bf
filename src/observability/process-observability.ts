import { collectDefaultMetrics } from 'prom-client';
import type { Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import { startFailureRateMonitor } from './failure-rate-monitor.js';
import { registerFleetMetrics } from './fleet-metrics.js';
import { metricsRegistry } from './metrics.js';

/**
 * What a Kiln process adds to its `/metrics` beyond the counters its code increments: Node's own
 * metrics, the fleet gauges and the failure-rate signal. Once per process, API and worker together
 * included (`npm start`), since a metric registers only once.
 */
export function startObservability(config: Config, db: Kysely<Database>, logger: Logger) {
  collectDefaultMetrics({ register: metricsRegistry });
  registerFleetMetrics(db, logger);
  return startFailureRateMonitor(db, logger, config.observability.failureRate);
}

import { Gauge } from 'prom-client';
import type { Kysely } from 'kysely';
import {
  countUnfinishedJobsByStatus,
  creditTotals,
  listCircuitStates,
} from '../db/fleet-stats-repository.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import { metricsRegistry } from './metrics.js';

const CIRCUIT_STATES = ['closed', 'open', 'half_open'] as const;

/**
 * Gauges read from Postgres at scrape time, so any one process tells the fleet-wide truth: the
 * backlog and each breaker are shared state no single process sees whole. Prometheus gets the same
 * series from every scraped process; aggregate with `max`. A failed read leaves the series out of that
 * scrape rather than failing it. Register once per process.
 */
export function registerFleetMetrics(db: Kysely<Database>, logger: Logger): void {
  new Gauge({
    name: 'kiln_jobs_unfinished',
    help: 'Jobs not ended yet across the fleet, by status (queued, running, storing)',
    labelNames: ['status'] as const,
    registers: [metricsRegistry],
    async collect() {
      this.reset();
      try {
        for (const [status, count] of await countUnfinishedJobsByStatus(db)) this.set({ status }, count);
      } catch (error) {
        logger.warn({ err: error }, 'reading job counts for metrics failed');
      }
    },
  });
  new Gauge({
    name: 'kiln_credits',
    help: 'Credits across the fleet: held by users to spend (balance), held by jobs not ended yet (reserved)',
    labelNames: ['held'] as const,
    registers: [metricsRegistry],
    async collect() {
      this.reset();
      try {
        const { balance, reserved } = await creditTotals(db);
        this.set({ held: 'balance' }, balance);
        this.set({ held: 'reserved' }, reserved);
      } catch (error) {
        logger.warn({ err: error }, 'reading credits for metrics failed');
      }
    },
  });
  new Gauge({
    name: 'kiln_provider_circuit_state',
    help: "Each provider's shared circuit breaker: 1 for its current state, 0 for the others",
    labelNames: ['provider', 'state'] as const,
    registers: [metricsRegistry],
    async collect() {
      this.reset();
      try {
        for (const circuit of await listCircuitStates(db)) {
          for (const state of CIRCUIT_STATES) {
            this.set({ provider: circuit.provider, state }, circuit.state === state ? 1 : 0);
          }
        }
      } catch (error) {
        logger.warn({ err: error }, 'reading circuit states for metrics failed');
      }
    },
  });
}

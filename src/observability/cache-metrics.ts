import { Counter } from 'prom-client';
import type { JobRow } from '../db/schema.js';
import type { CacheOutcome } from '../jobs/job.js';
import { metricsRegistry } from './metrics.js';

const registers = [metricsRegistry];

const callsSaved = new Counter({
  name: 'kiln_cache_calls_saved_total',
  help: "Jobs served by an identical job's call (joined) or stored result (reused): provider calls not made",
  labelNames: ['provider', 'model', 'outcome'] as const,
  registers,
});

const creditsSaved = new Counter({
  name: 'kiln_cache_credits_saved_total',
  help: 'Credits users were not charged because an identical job served theirs: reserved less the cache price',
  labelNames: ['provider', 'model', 'outcome'] as const,
  registers,
});

/** A job the result cache served has just succeeded, charged `price` of the `reserved` credits. */
export function countServedFromCache(
  { provider, model }: Pick<JobRow, 'provider' | 'model'>,
  outcome: CacheOutcome,
  credits: { reserved: number; price: number },
): void {
  callsSaved.inc({ provider, model, outcome });
  creditsSaved.inc({ provider, model, outcome }, Math.max(0, credits.reserved - credits.price));
}

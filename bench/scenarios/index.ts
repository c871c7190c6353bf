import type { Scenario } from '../lib/scenario.js';
import { cache } from './cache.js';
import { cancel } from './cancel.js';
import { capacity } from './capacity.js';
import { fairness } from './fairness.js';
import { fallback } from './fallback.js';
import { fallbackBacklog } from './fallback-backlog.js';
import { firstToken } from './first-token.js';
import { footprint } from './footprint.js';
import { orchestrationOverhead } from './orchestration-overhead.js';
import { pushLatency } from './push-latency.js';
import { quotaUse } from './quota-use.js';
import { recovery } from './recovery.js';
import { submitUnderLoad } from './submit-under-load.js';
import { textCredits } from './text-credits.js';

/** In the table order, which is also the report's; scenarios added since follow it. */
export const SCENARIOS: Scenario[] = [
  capacity,
  orchestrationOverhead,
  submitUnderLoad,
  pushLatency,
  quotaUse,
  recovery,
  fairness,
  footprint,
  cancel,
  firstToken,
  fallback,
  fallbackBacklog,
  cache,
  textCredits,
];

/**
 * The order they run in: `submit` leaves thousands of workflows queued (no worker runs there) and
 * `fairness` a terminated backlog in the dev server, so they go after the scenarios that time jobs.
 */
export const RUN_ORDER: string[] = [
  'overhead',
  'capacity',
  'push',
  'quota',
  'recovery',
  'cancel',
  'first-token',
  'fallback',
  'fallback-backlog',
  'cache',
  'text-credits',
  'footprint',
  'fairness',
  'submit',
];

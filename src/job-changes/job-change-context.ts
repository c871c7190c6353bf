import type { Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import type { WebhookRetryPolicy } from '../workflows/definitions.js';

/** What the effects of a job's change take, from whoever made it: an activity, or the API. */
export interface JobChangeContext {
  db: Kysely<Database>;
  /** The changer's own Temporal client: an activity's, or the API's. */
  temporal: Client;
  logger: Logger;
  /** Running slots per user: the end of a job passes its slot on. */
  plans: Config['plans'];
  /** Where webhook delivery workflows start (the main task queue), and how they retry. */
  deliveries: { taskQueue: string; retry: WebhookRetryPolicy };
}

/** What the effects of a job's change take, outside an activity: from the process's configuration. */
export function jobChangeContextFrom(parts: {
  db: Kysely<Database>;
  temporal: Client;
  logger: Logger;
  config: Pick<Config, 'temporal' | 'plans' | 'webhooks'>;
}): JobChangeContext {
  const { db, temporal, logger, config } = parts;
  const deliveries = { taskQueue: config.temporal.taskQueue, retry: config.webhooks.retry };
  return { db, temporal, logger, plans: config.plans, deliveries };
}

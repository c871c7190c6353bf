import { Context } from '@temporalio/activity';
import type { Kysely } from 'kysely';
import type { CircuitPolicy, Config, RetentionPolicy } from '../config/index.js';
import type { Database } from '../db/schema.js';
import type { JobChangeContext } from '../job-changes/job-change-context.js';
import type { Logger } from '../logger.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { ProviderCallCancels } from './provider-call-cancels.js';

/** Everything activities touch, handed in once by the worker so tests can pass their own. */
export interface ActivityDependencies {
  db: Kysely<Database>;
  store: ObjectStore;
  providers: ProviderRegistry;
  logger: Logger;
  /** How every provider's shared circuit breaker behaves. */
  circuit: CircuitPolicy;
  retention: RetentionPolicy;
  /** When a row without a workflow is ended. */
  orphans: Config['orphans'];
  /** Running slots per user (admission). */
  plans: Config['plans'];
  /** Fleet-wide rate and calls in flight per provider. */
  providerLimits: Config['providerLimits'];
  /** Webhook retries and the address guard. */
  webhooks: Config['webhooks'];
  /** Provider calls in flight in this process, for cancels announced by the API. */
  callCancels: ProviderCallCancels;
  /** How batch jobs are pooled into provider batches, and how often those are polled. */
  batches: Config['batches'];
  /** The main task queue, where webhook delivery workflows are started. */
  taskQueue: string;
}

/** What the effects of a job's change take, inside a running activity: the activity's own client. */
export function jobChangeContextOf(deps: ActivityDependencies): JobChangeContext {
  const { db, logger, plans, taskQueue, webhooks } = deps;
  const { client } = Context.current();
  return { db, temporal: client, logger, plans, deliveries: { taskQueue, retry: webhooks.retry } };
}

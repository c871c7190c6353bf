import type { Kysely } from 'kysely';
import type { CircuitPolicy, Config, RetentionPolicy } from '../config/index.js';
import type { Database } from '../db/schema.js';
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
  /** The main task queue, where webhook delivery workflows are started. */
  taskQueue: string;
}

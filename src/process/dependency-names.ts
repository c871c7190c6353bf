import type { Config } from '../config/index.js';
import { DEFAULT_TEMPORAL_ADDRESS } from '../temporal-client.js';

const SERVICES_HINT = 'run `npm run services` (or `npm start`) first';

/** Where a waiting process looks for its database, and what starts the embedded one. */
export function postgresHint(database: Config['database']): string {
  const where = `at ${database.url}`;
  return database.embedded ? `${where}, the embedded server: ${SERVICES_HINT}, or set DATABASE_URL` : where;
}

/** Where a waiting process looks for Temporal, and what starts the dev server. */
export function temporalHint(temporal: Config['temporal']): string {
  if (temporal.address) return `at ${temporal.address}`;
  return `at ${DEFAULT_TEMPORAL_ADDRESS}, the dev server: ${SERVICES_HINT}, or set TEMPORAL_ADDRESS`;
}

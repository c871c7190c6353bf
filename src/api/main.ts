import { loadConfig } from '../config/index.js';
import { startTracing } from '../observability/tracing.js';

/**
 * `npm run api`: the HTTP and WebSocket API against the Temporal, Postgres and storage in the
 * environment. Tracing starts before the API's modules are imported: its HTTP instrumentation takes
 * hold of `http` only as Express first requires it.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const tracing = startTracing(config.observability.tracing, 'kiln-api');
  const { runApi } = await import('./run-api.js');
  await runApi(config, tracing);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

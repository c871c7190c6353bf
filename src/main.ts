import { loadConfig } from './config/index.js';
import { startTracing } from './observability/tracing.js';

/**
 * `npm start`: PostgreSQL, Temporal, worker and API in one command, on embedded defaults. Tracing starts
 * before the rest of Kiln is imported: its HTTP instrumentation takes hold of `http` only as Express
 * first requires it.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  // One process, one service name: the API's and the worker's spans come from the same place.
  const tracing = startTracing(config.observability.tracing, 'kiln');
  const { runKilnWithDevServices } = await import('./run-kiln.js');
  try {
    await runKilnWithDevServices(config);
  } finally {
    await tracing.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

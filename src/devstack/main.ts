import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { loadConfig } from '../config/index.js';
import { startDevServices } from './dev-services.js';

/**
 * `npm run services`: the embedded PostgreSQL and the Temporal dev server alone, until Ctrl-C /
 * SIGTERM, for running `npm run api` and `npm run worker` as processes of their own.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  await mkdir(config.dataDir, { recursive: true });
  const services = await startDevServices(config);
  console.log(
    `\nServices are running.\n  PostgreSQL:  ${config.database.url}\n` +
      `  Temporal:    ${services.config.temporal.address ?? ''} (UI ${services.temporalUiUrl ?? 'none'})\n` +
      `Now, in other terminals: npm run worker, npm run api\n`,
  );
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await services.stop();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

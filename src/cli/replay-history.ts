import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../config/index.js';
import { kilnDataConverter } from '../temporal-client.js';

/**
 * `npm run replay -- <history.json>…`: replays exported workflow histories (`temporal workflow show
 * --output json`, or the Web UI's download) against the workflow code checked out here. A history the
 * code would no longer produce fails with DeterminismViolationError: the change needs `patched()`.
 * Encrypted payloads decrypt with PAYLOAD_ENCRYPTION_KEYS, as on the workers.
 */

// Under tsx the sources are .ts, once built they are .js: bundle whichever this file is.
const sourceExtension = path.extname(fileURLToPath(import.meta.url));
const workflowsPath = fileURLToPath(new URL(`../workflows/index${sourceExtension}`, import.meta.url));

async function main(files: string[]): Promise<number> {
  if (files.length === 0) {
    console.error('usage: npm run replay -- <history.json>…');
    return 2;
  }
  const dataConverter = kilnDataConverter(loadConfig().temporal);
  for (const file of files) {
    const history: unknown = JSON.parse(await readFile(file, 'utf8'));
    await Worker.runReplayHistory({ workflowsPath, dataConverter }, history, path.basename(file, '.json'));
    console.log(`${file}: replays without nondeterminism`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

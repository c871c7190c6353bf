import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Worker } from '@temporalio/worker';

const historyFile = fileURLToPath(new URL('./fixtures/run-generation-history.json', import.meta.url));
const workflowsPath = path.resolve(fileURLToPath(new URL('../src/workflows/index.ts', import.meta.url)));

test('the workflow code replays a history recorded from a real run without nondeterminism', async () => {
  const history: unknown = JSON.parse(await readFile(historyFile, 'utf8'));
  // Throws DeterminismViolationError if today's code would issue different commands.
  await Worker.runReplayHistory({ workflowsPath }, history);
});

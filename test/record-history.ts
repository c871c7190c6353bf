import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureTemporalCli } from '../src/devstack/temporal-cli.js';
import { pollUntilDone, submit } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext } from './harness/test-context.js';

/**
 * Re-records the history the replay test checks the workflow against. Run after a deliberate change
 * to the workflow's command sequence: `node --import tsx test/record-history.ts`.
 */
const HISTORY_FIXTURE = fileURLToPath(new URL('./fixtures/run-generation-history.json', import.meta.url));

test('record a runGeneration history', async () => {
  const ctx = await createTestContext();
  try {
    await startWorker(ctx);
    const api = await startApi(ctx);
    const body = { kind: 'image', prompt: 'a recorded kiln', params: { size: '256x256' } };
    const job = await pollUntilDone(api, String((await submit(api, body, randomUUID())).body.id));
    // The CLI writes the same JSON the Web UI downloads, so operators' exports replay the same way.
    const temporal = await ensureTemporalCli();
    const { stdout } = await promisify(execFile)(temporal, [
      'workflow',
      'show',
      '--workflow-id',
      job.id,
      '--address',
      ctx.config.temporal.address ?? '',
      '--output',
      'json',
    ]);
    await writeFile(HISTORY_FIXTURE, stdout);
    console.log(`recorded ${job.id} (${job.status})`);
  } finally {
    await ctx.cleanup();
  }
});

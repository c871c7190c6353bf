import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { JobEventHub } from '../src/api/job-event-hub.js';
import { markPurged } from '../src/db/retention-repository.js';
import type { JobEvent } from '../src/events/job-event.js';
import { createLogger } from '../src/logger.js';
import { submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

let ctx: TestContext;
let api: ApiTarget;
let hub: JobEventHub;
let stopHub: () => Promise<void>;

before(async () => {
  ctx = await createTestContext();
  // No worker: each job stays queued, with its one event.
  api = await startApi(ctx);
  const started = await JobEventHub.start(ctx.database, createLogger('silent', 'test'));
  hub = started.hub;
  stopHub = () => started.stop();
});
after(async () => {
  await stopHub();
  await ctx.cleanup();
});

async function queuedJob(): Promise<string> {
  const reply = await submit(api, { kind: 'image', prompt: `hub ${randomUUID()}` }, randomUUID());
  assert.equal(reply.status, 202);
  return String(reply.body.id);
}

/** The events a subscriber after `since` is told by the time its catch-up read is over. */
async function caughtUp(jobId: string, since: number): Promise<JobEvent[]> {
  const told: JobEvent[] = [];
  const unsubscribe = await hub.subscribe(jobId, since, { onEvent: (event) => told.push(event) });
  unsubscribe();
  return told;
}

describe("a subscriber's catch-up read", () => {
  test('a row ahead of its events (the next one committing between two reads) is not told as an event', async () => {
    const jobId = await queuedJob();
    // The state a write leaves for the moment between the event read and the row read.
    await sql`update jobs set version = version + 1 where id = ${jobId}`.execute(ctx.database.db);
    assert.deepEqual(await caughtUp(jobId, 1), []);
  });

  test('a job whose events retention removed is told by its row, numbered by its version', async () => {
    const jobId = await queuedJob();
    await markPurged(ctx.database.db, [jobId]);
    const told = await caughtUp(jobId, 0);
    assert.deepEqual(
      told.map((event) => ({ seq: event.seq, type: event.type, id: event.job.id })),
      [{ seq: 1, type: 'status', id: jobId }],
    );
  });
});

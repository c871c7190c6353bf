import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { startApiServer } from '../src/api/api-server.js';
import { findJob } from '../src/db/job-repository.js';
import { createLogger } from '../src/logger.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { ensureOrphanSweepSchedule, orphanSweepScheduleId } from '../src/worker/schedules.js';
import { balanceProblems, jobLedgerProblems } from './harness/fault-checks.js';
import { pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { startTcpProxy, type TcpProxy } from './harness/tcp-proxy.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const BODY = { kind: 'image', params: { size: '256x256' } };

describe('a job row with no workflow behind it is ended, refunded, within the grace period', () => {
  let ctx: TestContext;
  let link: TcpProxy;
  let cutOffApi: ApiTarget & { close(): Promise<void> };

  before(async () => {
    ctx = await createTestContext({ ORPHAN_JOB_GRACE_SECONDS: '2', ORPHAN_SWEEP_INTERVAL_SECONDS: '1' });
    // An API whose only way to Temporal is a link the test can stall.
    link = await startTcpProxy(ctx.config.temporal.address ?? '');
    const connection = await Connection.connect({ address: link.address });
    const temporal = new Client({ connection, namespace: ctx.config.temporal.namespace });
    const server = await startApiServer({
      config: ctx.config,
      database: ctx.database,
      temporal,
      store: ctx.store,
      providers: configuredProviders(ctx.config),
      logger: createLogger('silent', 'cut-off-api'),
    });
    cutOffApi = { url: server.url, apiKey: ctx.apiKey, close: () => server.close() };
    ctx.onCleanup(async () => {
      await cutOffApi.close();
      await connection.close();
      await link.close();
    });
  });
  after(() => ctx.cleanup());

  test('Temporal unreachable at submit: a 503 at once, then the row is expired and refunded', async () => {
    link.refuse();
    const startedAt = Date.now();
    const refused = await submit(cutOffApi, { ...BODY, prompt: `orphan ${randomUUID()}` }, randomUUID());
    assert.equal(refused.status, 503);
    assert.equal((refused.body.error as { code: string }).code, 'temporal_unavailable');
    assert.ok(refused.headers.get('retry-after'), 'a 503 says when to try again');
    assert.ok(Date.now() - startedAt < 15_000, 'the submission did not hang on Temporal');
    link.accept();
    // The row was written (and paid for) before the start was tried: that is the orphan.
    const orphans = await ctx.database.db
      .selectFrom('jobs')
      .selectAll()
      .where('user_id', '=', ctx.userId)
      .where('status', '=', 'queued')
      .execute();
    assert.equal(orphans.length, 1);
    const [orphan] = orphans;

    // A healthy job beside it, still waiting for its slot when the sweep looks: it must be left alone.
    // Submitted through an API of its own: the cut-off one's client may still be reconnecting, and a
    // start that lands past the grace period is an orphan's, which the sweep ends as it should.
    const api = await startApi(ctx);
    await startWorker(ctx);
    await ensureOrphanSweepSchedule(ctx.temporal, ctx.config);
    ctx.onCleanup(() => ctx.temporal.schedule.getHandle(orphanSweepScheduleId(ctx.config)).delete());
    const healthy = await submit(api, { ...BODY, prompt: `healthy ${randomUUID()}` }, randomUUID());
    assert.equal(healthy.status, 202);

    const ended = await pollUntilDone(api, orphan!.id, 60_000);
    assert.equal(ended.status, 'expired');
    assert.equal((await pollUntilDone(api, String(healthy.body.id), 60_000)).status, 'succeeded');
    assert.deepEqual(await balanceProblems(ctx.database.db), []);
    assert.deepEqual(
      await jobLedgerProblems(ctx.database.db, [ended, { id: String(healthy.body.id), status: 'succeeded' }]),
      [],
    );
    assert.ok((await findJob(ctx.database.db, String(healthy.body.id)))?.workflow_seen_at);
  });
});

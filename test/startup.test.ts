import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnKilnProcess, type KilnProcess } from './harness/kiln-processes.js';
import { startTcpProxy, type TcpProxy } from './harness/tcp-proxy.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

async function waitForOutput(process: KilnProcess, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!process.output().includes(text)) {
    if (process.child.exitCode !== null) throw new Error(`exited: ${process.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`no "${text}" in: ${process.output().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('processes started before their dependencies wait for them', () => {
  let ctx: TestContext;
  let postgres: TcpProxy;
  let temporal: TcpProxy;

  before(async () => {
    ctx = await createTestContext();
    const database = new URL(ctx.env.DATABASE_URL ?? '');
    postgres = await startTcpProxy(database.host);
    temporal = await startTcpProxy(ctx.env.TEMPORAL_ADDRESS ?? '');
    postgres.refuse();
    temporal.refuse();
    database.host = postgres.address;
    ctx.onCleanup(async () => {
      await postgres.close();
      await temporal.close();
    });
    Object.assign(ctx.env, { DATABASE_URL: database.toString(), TEMPORAL_ADDRESS: temporal.address });
  });
  after(() => ctx.cleanup());

  test('an API and a worker started with PostgreSQL and Temporal down serve once both are up', async () => {
    const processes = [spawnKilnProcess(ctx, 'api'), spawnKilnProcess(ctx, 'worker')];
    for (const process of processes) await waitForOutput(process, 'PostgreSQL unreachable; waiting for it');
    postgres.accept();
    for (const process of processes) await waitForOutput(process, 'Temporal unreachable; waiting for it');
    temporal.accept();
    await Promise.all(processes.map((process) => process.ready));
    const [api] = processes;
    const { url } = JSON.parse(
      api!
        .output()
        .split('\n')
        .find((line) => line.includes('api listening')) ?? '{}',
    ) as { url: string };
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  });
});

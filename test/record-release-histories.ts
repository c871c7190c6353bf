import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ensureWebhookSecret } from '../src/db/webhook-secret-repository.js';
import type { WebhookDelivery } from '../src/db/webhook-repository.js';
import { ensureTemporalCli } from '../src/devstack/temporal-cli.js';
import { FailureCode } from '../src/jobs/job.js';
import { admittedSignal, deliveryWorkflowId } from '../src/workflows/definitions.js';
import { startWebhookReceiver, type FakeWebhookReceiver } from './fakes/webhook-receiver.js';
import { failure, generated, hang, waiting } from './harness/generation-fakes.js';
import { apiFetch, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { releaseHistoriesDir } from './harness/release-histories.js';
import { createTestContext, type TestContext } from './harness/test-context.js';
import { startWorkflowRunner, type WorkflowRunner } from './harness/workflow-runner.js';

/*
 * `npm run record-histories`: records the workflow histories of the version in package.json, once, at
 * its release, into test/fixtures/histories/<version>/. The replay test replays every release's set
 * against today's code, so a change that would break jobs started under a released version fails the
 * build. A released set is never recorded again: the run refuses a version that has one.
 */

const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const dir = releaseHistoriesDir(version);
if (existsSync(dir)) throw new Error(`${dir} exists: release ${version} was recorded; bump the version`);
await mkdir(dir, { recursive: true });

/** A set with a path missing would let a break of that path through: a failed recording keeps none. */
const planned = new Set<string>();
const saved = new Set<string>();
after(async () => {
  if (saved.size !== planned.size) await rm(dir, { recursive: true, force: true });
});

/** A test that records the history its body returns as `<name>.json`. */
function recording(name: string, body: () => Promise<string>): void {
  planned.add(name);
  test(name, async () => {
    await writeFile(`${dir}/${name}.json`, await body());
    saved.add(name);
  });
}

describe('runGeneration against scripted activities: one history per path through the workflow', () => {
  let runner: WorkflowRunner;
  before(async () => {
    runner = await startWorkflowRunner();
  });
  after(() => runner?.stop());

  const paths: [string, Parameters<WorkflowRunner['runJob']>[0], Parameters<WorkflowRunner['runJob']>[1]?][] =
    [
      ['generated-first-call', {}],
      [
        'retried-after-failures',
        { answers: [failure(FailureCode.providerUnavailable), failure(FailureCode.rateLimited), generated] },
      ],
      ['waited-for-capacity', { answers: [waiting(20), waiting(20), generated] }],
      ['failed-for-good', { answers: [failure(FailureCode.contentPolicy)] }],
      [
        'admitted-by-signal',
        { admissions: [false] },
        async (handle, fakes) => {
          await fakes.seen('admitWaitingJobs');
          await handle.signal(admittedSignal);
        },
      ],
      [
        'expired-waiting-for-admission',
        { admissions: [false, false, false], deadline: { startWithinSeconds: 1 } },
      ],
      [
        'canceled-during-call',
        { answers: [hang] },
        async (handle, fakes) => {
          await fakes.seen('callProvider');
          await handle.cancel();
        },
      ],
      ['finish-deadline-passed', { answers: [hang], deadline: { finishWithinSeconds: 1 } }],
    ];
  for (const [name, script, meanwhile] of paths) {
    recording(name, async () => runner.historyJSON((await runner.runJob(script, meanwhile)).jobId));
  }
});

describe('real jobs through the API and the workers', () => {
  let ctx: TestContext;
  let api: ApiTarget;
  let receiver: FakeWebhookReceiver;
  before(async () => {
    receiver = await startWebhookReceiver();
    ctx = await createTestContext({ WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_BACKOFF_INITIAL_MS: '200' });
    receiver.setSecret((await ensureWebhookSecret(ctx.database.db, ctx.userId)).secret);
    await startWorker(ctx);
    api = await startApi(ctx);
  });
  after(async () => {
    await ctx?.cleanup();
    await receiver?.close();
  });

  /** The CLI writes the same JSON the Web UI downloads, so operators' exports replay the same way. */
  async function show(workflowId: string): Promise<string> {
    const temporal = await ensureTemporalCli();
    const address = ctx.config.temporal.address ?? '';
    const args = ['workflow', 'show', '--workflow-id', workflowId, '--address', address, '--output', 'json'];
    return (await promisify(execFile)(temporal, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
  }

  async function runToEnd(body: Record<string, unknown>): Promise<string> {
    const job = await pollUntilDone(api, String((await submit(api, body, randomUUID())).body.id));
    if (job.status !== 'succeeded') throw new Error(`${job.id} ended ${job.status}`);
    return job.id;
  }

  recording('image-end-to-end', async () => {
    const body = { kind: 'image', prompt: 'a recorded kiln', params: { size: '256x256' } };
    return show(await runToEnd(body));
  });

  recording('text-end-to-end', async () => show(await runToEnd({ kind: 'text', prompt: 'a recorded kiln' })));

  recording('webhook-delivered-after-a-failure', async () => {
    receiver.failNext('recorded', 1, 503);
    const webhook = { url: receiver.endpoint('recorded'), events: ['succeeded'] };
    const jobId = await runToEnd({ kind: 'image', prompt: 'a recorded webhook', webhook });
    const delivery = await deliveredOnce(jobId);
    return show(deliveryWorkflowId(delivery.id, delivery.run));
  });

  async function deliveredOnce(jobId: string): Promise<WebhookDelivery> {
    for (let tries = 0; tries < 200; tries++) {
      const response = await apiFetch(api, `/v1/generations/${jobId}/webhooks`);
      const [delivery] = ((await response.json()) as { data: WebhookDelivery[] }).data;
      if (delivery?.status === 'succeeded') return delivery;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the webhook of ${jobId} was not delivered`);
  }
});

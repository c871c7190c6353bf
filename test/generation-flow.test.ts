import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import type { JobStatus } from '../src/jobs/job.js';
import type { FakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import { apiFetch, pollUntilDone, submit, watchUntilDone, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';
import type { TestContext } from './harness/test-context.js';

const LIFECYCLE: JobStatus[] = ['queued', 'running', 'storing', 'succeeded'];

describe('a generation job, end to end on Temporal, PostgreSQL and MinIO', () => {
  let provider: FakeOpenAIImagesServer;
  let ctx: TestContext;
  let api: ApiTarget;
  let stack: OpenAIStack;

  before(async () => {
    stack = await startOpenAIStack();
    ({ provider, ctx, api } = stack);
  });
  after(() => stack.stop());

  function providerCallsFor(prompt: string): number {
    return provider.requests.filter((body) => body.prompt === prompt).length;
  }

  test('streams its states in order and stores the PNG whose sha256 it recorded', async () => {
    const prompt = `a lighthouse ${randomUUID()}`;
    const accepted = await submit(api, { kind: 'image', prompt, params: { size: '256x256' } }, randomUUID());
    assert.equal(accepted.status, 202);
    assert.equal(accepted.body.status, 'queued');
    const id = String(accepted.body.id);

    const snapshots = await watchUntilDone(api, id);
    const order = snapshots.map((job) => LIFECYCLE.indexOf(job.status));
    assert.deepEqual(
      order,
      [...order].sort(),
      `states out of order: ${snapshots.map((j) => j.status).join(',')}`,
    );
    assert.ok(snapshots.every((job, i) => i === 0 || job.version > snapshots[i - 1]!.version));
    const done = snapshots.at(-1)!;
    assert.equal(done.status, 'succeeded');
    assert.ok(
      snapshots.some((job) => job.status === 'running' && job.progress > 0),
      'progress was reported',
    );
    assert.equal(done.attempts, 1);
    assert.ok(done.startedAt && done.completedAt);

    const content = await apiFetch(api, `/v1/generations/${id}/content`);
    assert.equal(content.status, 200);
    assert.equal(content.headers.get('content-type'), 'image/png');
    const bytes = Buffer.from(await content.arrayBuffer());
    assert.equal(bytes.byteLength, done.result?.byteSize);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), done.result?.sha256);
    const png = PNG.sync.read(bytes);
    assert.deepEqual([png.width, png.height], [256, 256]);
  });

  test('the local provider makes a real PNG of the requested size with no network', async () => {
    const body = { kind: 'image', prompt: 'a kiln at dawn', provider: 'local', params: { size: '512x512' } };
    const accepted = await submit(api, body, randomUUID());
    const job = await pollUntilDone(api, String(accepted.body.id));
    assert.equal(job.status, 'succeeded');
    assert.equal(job.provider, 'local');
    const png = PNG.sync.read(
      Buffer.from(await (await apiFetch(api, `/v1/generations/${job.id}/content`)).arrayBuffer()),
    );
    assert.deepEqual([png.width, png.height], [512, 512]);
  });

  test('the same idempotency key gives one job, one workflow and one provider call', async () => {
    const prompt = `twins ${randomUUID()}`;
    const key = randomUUID();
    const body = {
      kind: 'image',
      prompt,
      provider: 'openai',
      model: 'dall-e-2',
      params: { size: '256x256' },
    };
    const [first, second] = await Promise.all([submit(api, body, key), submit(api, body, key)]);
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.equal(first.body.id, second.body.id);
    const replays = [first, second].filter((r) => r.headers.get('idempotent-replayed') === 'true');
    assert.equal(replays.length, 1, 'exactly one of two concurrent submissions is the original');

    const job = await pollUntilDone(api, String(first.body.id));
    assert.equal(job.status, 'succeeded');
    const again = await submit(api, body, key);
    assert.equal(again.body.id, job.id);
    assert.equal(again.body.status, 'succeeded');
    assert.equal(providerCallsFor(prompt), 1);

    const workflows = [];
    for await (const workflow of ctx.temporal.workflow.list({ query: `WorkflowId = '${job.id}'` })) {
      workflows.push(workflow);
    }
    assert.equal(workflows.length, 1);

    const reused = await submit(api, { ...body, prompt: `${prompt} (edited)` }, key);
    assert.equal(reused.status, 422);
    assert.deepEqual((reused.body.error as { code: string }).code, 'idempotency_key_reused');
  });

  test('an invalid body gets 400 naming the field and starts nothing', async () => {
    const prompt = `never ${randomUUID()}`;
    const response = await submit(api, { kind: 'image', prompt, params: { size: '999x999' } }, randomUUID());
    assert.equal(response.status, 400);
    const error = response.body.error as {
      code: string;
      message: string;
      details: { fields: { field: string }[] };
    };
    assert.equal(error.code, 'invalid_request');
    assert.deepEqual(
      error.details.fields.map((f) => f.field),
      ['params.size'],
    );
    const rows = await ctx.database.db
      .selectFrom('jobs')
      .select('id')
      .where('prompt_sha256', '=', sha256(prompt))
      .execute();
    assert.equal(rows.length, 0);
    assert.equal(providerCallsFor(prompt), 0);
  });

  test('a missing idempotency key is refused', async () => {
    const response = await submit(api, { kind: 'image', prompt: 'x' }, undefined);
    assert.equal(response.status, 400);
    assert.equal((response.body.error as { code: string }).code, 'missing_idempotency_key');
  });

  test('an unknown job is a 404 in the error shape', async () => {
    const response = await apiFetch(api, `/v1/generations/job_nope`);
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), { error: { code: 'not_found', message: 'no such job' } });
  });
});

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

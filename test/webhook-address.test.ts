import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { findJob } from '../src/db/job-repository.js';
import { jobIdFor } from '../src/jobs/job-identity.js';
import { assertErrorShape } from './harness/error-shape.js';
import { submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

interface FieldErrors {
  fields: { field: string; message: string }[];
}

describe('a webhook URL deliveries may not reach is refused at submission', () => {
  let ctx: TestContext;
  let api: ApiTarget;

  before(async () => {
    // WEBHOOK_ALLOW_PRIVATE is left at its default, false; no worker: accepted jobs stay queued.
    ctx = await createTestContext();
    api = await startApi(ctx);
  });
  after(() => ctx.cleanup());

  const submitWithWebhook = (url: string, key = randomUUID()) =>
    submit(api, { kind: 'image', prompt: 'hook address', webhook: { url } }, key);

  for (const [url, reason] of [
    ['http://127.0.0.1:8080/hook', /127\.0\.0\.1 is a loopback address/],
    ['https://[::1]/hook', /::1 is a loopback address/],
    ['https://10.1.2.3/hook', /10\.1\.2\.3 is a private address/],
    ['http://169.254.169.254/latest/meta-data', /169\.254\.169\.254 is a link-local address/],
    ['https://[::ffff:192.168.0.1]/hook', /is a private address/],
    ['http://localhost:3000/hook', /localhost resolves to .*, a loopback address/],
  ] as const) {
    test(`${url}: 400 invalid_request naming webhook.url, and no job`, async () => {
      const key = randomUUID();
      const refused = await submitWithWebhook(url, key);
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      const error = assertErrorShape(refused.body);
      assert.equal(error.code, 'invalid_request');
      assert.equal((error.details as FieldErrors).fields[0]?.field, 'webhook.url');
      assert.match(error.message, /^webhook\.url: /);
      assert.match(error.message, reason);
      assert.equal(await findJob(ctx.database.db, jobIdFor(ctx.userId, key)), undefined);
    });
  }

  test('a public address is accepted; its deliveries are checked again when they resolve it', async () => {
    const accepted = await submitWithWebhook('https://93.184.216.34/hook');
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  });

  test('a name that does not resolve is left to the deliveries', async () => {
    const accepted = await submitWithWebhook('https://hooks.invalid/hook');
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  });
});

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { jobEventsAfter } from '../src/db/job-event-repository.js';
import type { WebhookDelivery } from '../src/db/webhook-repository.js';
import { ensureWebhookSecret } from '../src/db/webhook-secret-repository.js';
import { sendWebhook } from '../src/webhooks/send-webhook.js';
import { signWebhook, webhookHeaders } from '../src/webhooks/signing.js';
import { AddressRefused, resolveAllowedHost } from '../src/egress/address-guard.js';
import {
  startWebhookReceiver,
  verifyStandardWebhook,
  type FakeWebhookReceiver,
} from './fakes/webhook-receiver.js';
import { apiFetch, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/** Short enough that a delivery gives up within a test; the defaults are 24 h, 5 s and 1 h. */
const RETRY_WINDOW_SECONDS = 4;

let ctx: TestContext;
let api: ApiTarget;
let receiver: FakeWebhookReceiver;

before(async () => {
  receiver = await startWebhookReceiver();
  ctx = await createTestContext({
    // The receiver listens on 127.0.0.1, which the guard refuses by default.
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_RETRY_WINDOW_SECONDS: String(RETRY_WINDOW_SECONDS),
    WEBHOOK_BACKOFF_INITIAL_MS: '400',
    WEBHOOK_BACKOFF_MAX_MS: '800',
    WEBHOOK_ATTEMPT_TIMEOUT_SECONDS: '2',
    LOCAL_PROVIDER_DELAY_MS: '600',
    LOCAL_PROVIDER_STEPS: '3',
  });
  receiver.setSecret((await ensureWebhookSecret(ctx.database.db, ctx.userId)).secret);
  await startWorker(ctx);
  api = await startApi(ctx);
});
after(async () => {
  await ctx.cleanup();
  await receiver.close();
});

async function submitWithWebhook(webhook: unknown): Promise<string> {
  const body = { kind: 'image', prompt: `webhook ${randomUUID()}`, params: { size: '256x256' }, webhook };
  const reply = await submit(api, body, randomUUID());
  assert.equal(reply.status, 202, JSON.stringify(reply.body));
  return String(reply.body.id);
}

async function deliveries(jobId: string): Promise<WebhookDelivery[]> {
  const response = await apiFetch(api, `/v1/generations/${jobId}/webhooks`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { data: WebhookDelivery[] }).data;
}

/** Polls the job's deliveries until `done` holds for them. */
async function deliveriesWhen(
  jobId: string,
  done: (list: WebhookDelivery[]) => boolean,
  timeoutMs = 20_000,
): Promise<WebhookDelivery[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await deliveries(jobId);
    if (done(list)) return list;
    if (Date.now() > deadline) assert.fail(`deliveries of ${jobId}: ${JSON.stringify(list)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const allSettled = (list: WebhookDelivery[]) => list.length > 0 && list.every((d) => d.status !== 'pending');

test('a terminal event reaches a receiver that failed twice, signed, with its seq; the job did not wait', async () => {
  receiver.failNext('flaky', 2);
  const jobId = await submitWithWebhook({ url: receiver.endpoint('flaky') });
  const job = await pollUntilDone(api, jobId);
  assert.equal(job.status, 'succeeded');
  const [delivery, ...others] = await deliveriesWhen(jobId, allSettled);
  assert.equal(others.length, 0, 'the default filter is the terminal statuses only');
  assert.equal(delivery?.status, 'succeeded');
  assert.deepEqual(
    delivery.attempts.map((a) => [a.number, a.run, a.statusCode, a.error === null]),
    [
      [1, 1, 500, false],
      [2, 1, 500, false],
      [3, 1, 204, true],
    ],
  );
  const requests = receiver.received('flaky');
  assert.equal(requests.length, 3);
  assert.ok(
    requests.every((r) => r.verified),
    'every attempt is signed with the user secret',
  );
  assert.deepEqual(
    new Set(requests.map((r) => r.id)),
    new Set([delivery.id]),
    'one webhook-id across retries',
  );
  const terminal = (await jobEventsAfter(ctx.database.db, jobId, 0)).at(-1)!;
  for (const { payload } of requests) {
    assert.equal(payload?.type, 'job.status');
    assert.equal(payload.seq, terminal.seq);
    assert.equal(payload.seq, delivery.seq);
    assert.deepEqual(payload.data, terminal.job);
  }
  // The job's workflow had closed before the delivery got through: it never waited for it.
  const { closeTime } = await ctx.temporal.workflow.getHandle(jobId).describe();
  assert.ok(closeTime && closeTime < new Date(delivery.attempts[2]!.startedAt));
  assert.ok(new Date(job.completedAt!) < new Date(delivery.attempts[1]!.startedAt));
});

test("progress and chosen statuses are delivered too, each job's in seq order", async () => {
  const events = ['progress', 'running', 'succeeded'];
  const jobIds = await Promise.all(
    [1, 2, 3].map(() => submitWithWebhook({ url: receiver.endpoint('all'), events })),
  );
  for (const jobId of jobIds) {
    await pollUntilDone(api, jobId);
    const list = await deliveriesWhen(jobId, allSettled);
    const wanted = (await jobEventsAfter(ctx.database.db, jobId, 0)).filter(
      (event) => event.type === 'progress' || events.includes(event.job.status),
    );
    assert.ok(wanted.some((event) => event.type === 'progress'));
    assert.deepEqual(
      list.map((d) => [d.seq, d.event, d.status]),
      wanted.map((event) => [event.seq, event.type, 'succeeded']),
    );
    const received = receiver.received('all').filter((r) => r.payload?.data.id === jobId);
    assert.ok(received.every((r) => r.verified));
    assert.deepEqual(
      received.map((r) => r.payload?.seq),
      wanted.map((event) => event.seq),
      'received once each, in seq order',
    );
  }
});

test('a delivery that keeps failing gives up after the retry window, shows failed, and is redelivered', async () => {
  receiver.setDown('down', true);
  const jobId = await submitWithWebhook({ url: receiver.endpoint('down') });
  assert.equal((await pollUntilDone(api, jobId)).status, 'succeeded');
  const [failed] = await deliveriesWhen(jobId, allSettled, (RETRY_WINDOW_SECONDS + 15) * 1000);
  assert.equal(failed?.status, 'failed');
  assert.ok(failed.attempts.length >= 3, `${failed.attempts.length} attempts`);
  assert.ok(failed.attempts.every((a) => a.statusCode === 503 && a.run === 1));
  assert.equal(failed.lastError, 'receiver answered 503');
  const first = new Date(failed.attempts[0]!.startedAt).getTime();
  const last = new Date(failed.attempts.at(-1)!.startedAt).getTime();
  assert.ok(last - first >= RETRY_WINDOW_SECONDS * 1000 - 50, `attempts spanned ${last - first} ms`);

  receiver.setDown('down', false);
  const response = await apiFetch(api, `/v1/generations/${jobId}/webhooks/${failed.id}/redeliver`, {
    method: 'POST',
  });
  assert.equal(response.status, 202);
  const reopened = (await response.json()) as WebhookDelivery;
  assert.equal(reopened.run, 2);
  const [redelivered] = await deliveriesWhen(jobId, allSettled);
  assert.equal(redelivered?.status, 'succeeded');
  const lastAttempt = redelivered.attempts.at(-1)!;
  assert.deepEqual([lastAttempt.run, lastAttempt.statusCode], [2, 204]);
  assert.equal(lastAttempt.number, failed.attempts.length + 1);
  assert.ok(receiver.received('down').every((r) => r.verified && r.id === failed.id));
});

test('a redirect is a failed attempt and is not followed', async () => {
  receiver.redirectNext('moved', 1);
  const jobId = await submitWithWebhook({ url: receiver.endpoint('moved') });
  await pollUntilDone(api, jobId);
  const [delivery] = await deliveriesWhen(jobId, allSettled);
  assert.equal(delivery?.status, 'succeeded');
  assert.deepEqual(
    delivery.attempts.map((a) => [a.statusCode, a.error]),
    [
      [307, 'redirect (307) not followed'],
      [204, null],
    ],
  );
  assert.equal(receiver.redirectTargetHits(), 0);
});

test('the webhook is part of the request: a changed one reuses the key, a bad one is refused', async () => {
  const key = randomUUID();
  const body = { kind: 'image', prompt: 'webhook key', webhook: { url: receiver.endpoint('key') } };
  assert.equal((await submit(api, body, key)).status, 202);
  const replay = await submit(api, body, key);
  assert.equal(replay.headers.get('Idempotent-Replayed'), 'true');
  const changed = { ...body, webhook: { url: receiver.endpoint('key'), events: ['failed'] } };
  assert.equal((await submit(api, changed, key)).status, 422);
  for (const webhook of [
    { url: 'ftp://example.com/' },
    { url: 'not a url' },
    { url: 'https://x.test', events: ['done'] },
  ]) {
    const refused = await submit(api, { kind: 'image', prompt: 'bad hook', webhook }, randomUUID());
    assert.equal(refused.status, 400, JSON.stringify(webhook));
  }
});

test('a webhook URL with a user name or password is refused, and the password is not echoed', async () => {
  for (const url of ['http://user:s3cret@hooks.example/', 'https://s3cret@hooks.example/']) {
    const refused = await submit(api, { kind: 'image', prompt: 'hook auth', webhook: { url } }, randomUUID());
    assert.equal(refused.status, 400, url);
    const { error } = refused.body as { error: { code: string; message: string } };
    assert.equal(error.code, 'invalid_request');
    assert.match(error.message, /^webhook\.url: .*user name or password/);
    assert.ok(!JSON.stringify(refused.body).includes('s3cret'), JSON.stringify(refused.body));
  }
});

describe('signing and the address guard, without WEBHOOK_ALLOW_PRIVATE', () => {
  test('signatures match the Standard Webhooks test vector and the receiver verifies them', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const signature = signWebhook(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    assert.equal(signature, 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    const headers = webhookHeaders([secret], 'whd_1', '{"a":1}');
    assert.ok(verifyStandardWebhook(secret, headers, '{"a":1}'));
    assert.ok(!verifyStandardWebhook(secret, headers, '{"a":2}'));
    assert.ok(!verifyStandardWebhook('whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', headers, '{"a":1}'));
  });

  const refused = [
    ['127.0.0.1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['0.0.0.0', 'unspecified'],
    ['[::1]', 'loopback'],
    ['[::]', 'unspecified'],
    ['[fc00::1]', 'unique-local'],
    ['[fd12:3456::1]', 'unique-local'],
    ['[fe80::1]', 'link-local'],
    ['[::ffff:127.0.0.1]', 'loopback'],
    ['[::ffff:10.0.0.1]', 'private'],
    ['[::ffff:169.254.169.254]', 'link-local'],
    // IPv6 addresses that carry an IPv4 address are judged by it.
    ['[64:ff9b::7f00:1]', 'loopback'],
    ['[64:ff9b::10.0.0.1]', 'private'],
    ['[::127.0.0.1]', 'loopback'],
    ['[::a9fe:a9fe]', 'link-local'],
    ['[::ffff:0:7f00:1]', 'loopback'],
    ['[2002:7f00:1::1]', 'loopback'],
    ['[2002:c0a8:101::]', 'private'],
    // Refused whatever they carry.
    ['[64:ff9b:1::808:808]', 'local-use NAT64'],
    ['[2001:0:4136:e378:8000:63bf:3fff:fdd2]', 'Teredo'],
    ['localhost', 'loopback'],
  ] as const;
  for (const [host, range] of refused) {
    test(`refuses ${host} (${range})`, async () => {
      await assert.rejects(
        resolveAllowedHost(new URL(`https://${host}/hook`), { allowPrivate: false }),
        (error: unknown) => error instanceof AddressRefused && error.range === range,
      );
    });
  }

  test('allows public addresses, refuses a name with any private address, and allows all when configured', async () => {
    const publicHosts = [
      '93.184.216.34',
      '[2606:4700:4700::1111]',
      '[2606:4700::1111]',
      // Public IPv4 addresses carried by IPv6 ones are allowed, as the IPv4 address itself would be.
      '[64:ff9b::808:808]',
      '[::ffff:8.8.8.8]',
      '[2002:808:808::1]',
    ];
    for (const host of publicHosts) {
      assert.equal(
        (await resolveAllowedHost(new URL(`https://${host}/`), { allowPrivate: false })).length,
        1,
      );
    }
    const mixed = () =>
      Promise.resolve([
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.7', family: 4 },
      ]);
    await assert.rejects(
      resolveAllowedHost(new URL('https://hooks.example/'), { allowPrivate: false, lookup: mixed }),
      /hooks\.example resolves to 10\.0\.0\.7, a private address/,
    );
    const nat64 = () => Promise.resolve([{ address: '64:ff9b::a9fe:a9fe', family: 6 }]);
    await assert.rejects(
      resolveAllowedHost(new URL('https://hooks.example/'), { allowPrivate: false, lookup: nat64 }),
      /hooks\.example resolves to 64:ff9b::a9fe:a9fe, a link-local address \(it carries 169\.254\.169\.254\)/,
    );
    assert.ok(await resolveAllowedHost(new URL('http://127.0.0.1/'), { allowPrivate: true }));
  });

  test('a refused address is a permanent failure and no request is made', async () => {
    const before = receiver.received('guarded').length;
    const result = await sendWebhook({
      url: receiver.endpoint('guarded'),
      id: 'whd_guard',
      body: '{}',
      secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
      timeoutMs: 2000,
      allowPrivate: false,
    });
    assert.equal(result.permanent, true);
    assert.equal(result.statusCode, null);
    assert.match(result.error ?? '', /refused: 127\.0\.0\.1 is a loopback address/);
    assert.equal(receiver.received('guarded').length, before);
  });
});

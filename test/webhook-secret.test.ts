import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { ensureWebhookSecret, type WebhookSecret } from '../src/db/webhook-secret-repository.js';
import {
  startWebhookReceiver,
  verifyStandardWebhook,
  type FakeWebhookReceiver,
  type ReceivedWebhook,
} from './fakes/webhook-receiver.js';
import { apiFetch, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/** Short enough to wait out; the first backoff (half to all of its initial value) is longer than it. */
const SHORT_OVERLAP_SECONDS = 3;

let ctx: TestContext;
let api: ApiTarget;
let receiver: FakeWebhookReceiver;

before(async () => {
  receiver = await startWebhookReceiver();
  ctx = await createTestContext({
    // The receiver listens on 127.0.0.1, which the guard refuses by default.
    WEBHOOK_ALLOW_PRIVATE: 'true',
    // A retried attempt comes after a short overlap has ended.
    WEBHOOK_BACKOFF_INITIAL_MS: String((SHORT_OVERLAP_SECONDS + 1) * 2000),
    LOCAL_PROVIDER_DELAY_MS: '100',
  });
  await startWorker(ctx);
  api = await startApi(ctx);
});
after(async () => {
  await ctx.cleanup();
  await receiver.close();
});

async function readSecret(apiKey = ctx.apiKey): Promise<WebhookSecret> {
  const response = await apiFetch(api, '/v1/webhook-secret', {}, apiKey);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('Cache-Control'), 'no-store');
  return (await response.json()) as WebhookSecret;
}

function rotateRequest(body?: string, apiKey: string | null = ctx.apiKey, contentType = 'application/json') {
  const headers = body === undefined ? undefined : { 'Content-Type': contentType };
  return apiFetch(api, '/v1/webhook-secret/rotate', { method: 'POST', body, headers }, apiKey);
}

async function rotate(overlapSeconds?: number, apiKey = ctx.apiKey): Promise<WebhookSecret> {
  const body = overlapSeconds === undefined ? undefined : JSON.stringify({ overlapSeconds });
  const response = await rotateRequest(body, apiKey);
  assert.equal(response.status, 200);
  return (await response.json()) as WebhookSecret;
}

/** Every attempt to deliver a new job's terminal event, up to the one the receiver accepted. */
async function deliveryRequests(endpoint: string): Promise<ReceivedWebhook[]> {
  const webhook = { url: receiver.endpoint(endpoint) };
  const reply = await submit(api, { kind: 'image', prompt: `secret ${randomUUID()}`, webhook }, randomUUID());
  assert.equal(reply.status, 202, JSON.stringify(reply.body));
  const jobId = String(reply.body.id);
  await pollUntilDone(api, jobId);
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const requests = receiver.received(endpoint).filter((r) => r.payload?.data.id === jobId);
    if (requests.at(-1)?.status === 204) return requests;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`no accepted delivery of ${jobId}: ${JSON.stringify(receiver.received(endpoint))}`);
}

/**
 * For each `v1,` entry of the request's signature, in order, the name of the secret it verifies under on
 * its own (checked by the receiver's verifier, written apart from Kiln's signer).
 */
function signers(request: ReceivedWebhook, secrets: Record<string, string>): string[] {
  return request.signature.split(' ').map((entry) => {
    const headers = {
      'webhook-id': request.id,
      'webhook-timestamp': String(request.timestamp),
      'webhook-signature': entry,
    };
    const names = Object.keys(secrets).filter((name) =>
      verifyStandardWebhook(secrets[name]!, headers, request.body),
    );
    return names.join('+') || 'none';
  });
}

const secondsFromNow = (iso: string) => (Date.parse(iso) - Date.now()) / 1000;

test('the secret is made on the first read, the same on every read and in the CLI, and signs deliveries', async () => {
  const first = await readSecret();
  assert.match(first.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.ok(Math.abs(secondsFromNow(first.createdAt)) < 30, first.createdAt);
  assert.equal(first.previous, undefined);
  assert.deepEqual(await readSecret(), first);
  assert.deepEqual(await ensureWebhookSecret(ctx.database.db, ctx.userId), first);
  receiver.setSecret(first.secret);
  const [request] = await deliveryRequests('first');
  assert.deepEqual(signers(request!, { first: first.secret }), ['first']);
});

test('a rotation signs with the new and the replaced secret through its overlap, then with the new alone', async () => {
  const original = (await readSecret()).secret;
  receiver.setSecret(original);
  const first = await rotate(600);
  assert.notEqual(first.secret, original);
  assert.ok(Math.abs(secondsFromNow(first.previous!.expiresAt) - 600) < 30, first.previous?.expiresAt);
  assert.deepEqual(await readSecret(), first);
  // The receiver still holds the original secret, and accepts: its signature is the second entry.
  const secrets = { original, first: first.secret };
  const [during] = await deliveryRequests('rotated');
  assert.deepEqual(signers(during!, secrets), ['first', 'original']);

  // Rotating again during the overlap: the then-current secret becomes the previous one.
  const second = await rotate(600);
  receiver.setSecret(second.secret);
  const more = { ...secrets, second: second.secret };
  const [again] = await deliveryRequests('rotated');
  assert.deepEqual(signers(again!, more), ['second', 'first']);

  // A short overlap: a delivery's first attempt falls within it (and is refused), its retry after it.
  const third = await rotate(SHORT_OVERLAP_SECONDS);
  receiver.setSecret(third.secret);
  receiver.failNext('expiring', 1, 503);
  const expiresAt = Date.parse(third.previous!.expiresAt);
  const [refused, retried, ...others] = await deliveryRequests('expiring');
  assert.equal(others.length, 0);
  assert.ok(refused!.at < expiresAt && retried!.at > expiresAt, 'one attempt each side of the expiry');
  const all = { ...more, third: third.secret };
  assert.deepEqual(signers(refused!, all), ['third', 'second']);
  assert.deepEqual(signers(retried!, all), ['third'], 'after the overlap, the new secret alone');
  assert.deepEqual(await readSecret(), { secret: third.secret, createdAt: third.createdAt });
});

test("each user has a secret of their own: one user's key reads and rotates only that user's", async () => {
  const mine = await readSecret();
  const other = await ctx.createUser();
  const theirs = await readSecret(other.apiKey);
  assert.notEqual(theirs.secret, mine.secret);
  const rotated = await rotate(60, other.apiKey);
  assert.deepEqual(await readSecret(other.apiKey), rotated);
  assert.deepEqual(await readSecret(), mine, "the other user's rotation left this one alone");
  for (const response of [
    await apiFetch(api, '/v1/webhook-secret', {}, null),
    await rotateRequest(undefined, null),
    await rotateRequest(undefined, 'kiln_not-a-key'),
  ]) {
    assert.equal(response.status, 401);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'unauthorized');
  }
  assert.deepEqual(await readSecret(), mine);
});

test('the overlap defaults to a day and is bounded; a refused rotation rotates nothing', async () => {
  const { apiKey } = await ctx.createUser();
  const before = await readSecret(apiKey);
  const refusals: [string, string, number, string, RegExp][] = [
    ['{"overlapSeconds":-1}', 'application/json', 400, 'invalid_request', /^overlapSeconds: /],
    ['{"overlapSeconds":1.5}', 'application/json', 400, 'invalid_request', /^overlapSeconds: /],
    ['{"overlapSeconds":604801}', 'application/json', 400, 'invalid_request', /^overlapSeconds: /],
    ['{"overlapSeconds":"60"}', 'application/json', 400, 'invalid_request', /^overlapSeconds: /],
    ['{"overlap":60}', 'application/json', 400, 'invalid_request', /^\(body\): .*overlap/],
    ['{"overlapSeconds":', 'application/json', 400, 'malformed_json', /JSON/],
    [
      'overlapSeconds=60',
      'application/x-www-form-urlencoded',
      415,
      'unsupported_media_type',
      /application\/json/,
    ],
  ];
  for (const [body, contentType, status, code, message] of refusals) {
    const response = await rotateRequest(body, apiKey, contentType);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    assert.deepEqual([response.status, error.code], [status, code], body);
    assert.match(error.message, message, body);
  }
  assert.deepEqual(await readSecret(apiKey), before);

  const byDefault = await rotate(undefined, apiKey);
  assert.ok(Math.abs(secondsFromNow(byDefault.previous!.expiresAt) - 86_400) < 30);
  const longest = await rotate(604_800, apiKey);
  assert.ok(Math.abs(secondsFromNow(longest.previous!.expiresAt) - 604_800) < 30);
  const withoutOverlap = await rotate(0, apiKey);
  assert.equal(withoutOverlap.previous, undefined, 'the replaced secret stops signing at once');
  assert.deepEqual(await readSecret(apiKey), withoutOverlap);
});

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { findJob } from '../src/db/job-repository.js';
import { apiFetch, getJob, submit } from './harness/job-watcher.js';
import {
  card,
  cardShows,
  closePlayground,
  decodedWidth,
  freshUser,
  openPlayground,
  screenshot,
  shownJobIds,
  startPlaygroundStack,
  submitFromPage,
  until,
  type PlaygroundStack,
} from './harness/playground-page.js';

/*
 * The page's grid of jobs (every status, filters, paging by cursor), a job's detail view, and a job a
 * fallback served, in Chromium.
 */

let stack: PlaygroundStack;

before(async () => {
  stack = await startPlaygroundStack();
});
after(async () => {
  await stack?.browser.close();
  await stack?.ctx.cleanup();
});

test('a grid with every status: each card says how its job ended, or why it waits', async () => {
  const user = await freshUser(stack, { plan: 'solo' });
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
  const { page } = playground;
  const succeeded = await submitFromPage(page, { prompt: 'a kiln that fires' });
  await cardShows(page, succeeded, 'succeeded');
  const failed = await submitFromPage(page, { prompt: 'a kiln too slow', finishWithinSeconds: 1 });
  const failedCard = await cardShows(page, failed, 'failed');
  assert.match(
    (await failedCard.locator('.ending').textContent()) ?? '',
    /^Failed: the job did not finish by its deadline \(deadline_exceeded\): “.+”$/,
  );
  const canceled = await submitFromPage(page, { prompt: 'a kiln never fired' });
  await cardShows(page, canceled, 'running');
  await card(page, canceled).getByRole('button', { name: 'Cancel' }).click();
  // Said at once, long before the job has ended.
  await cardShows(page, canceled, 'canceling');
  assert.equal(await card(page, canceled).locator('.status').textContent(), 'canceling…');
  const canceledCard = await cardShows(page, canceled, 'canceled');
  assert.equal(await canceledCard.locator('.ending').textContent(), 'Canceled while it ran.');
  assert.equal(await canceledCard.locator('.cost').textContent(), '1 credit, refunded');
  assert.equal((await findJob(stack.ctx.database.db, canceled))?.status, 'canceled');

  const running = await submitFromPage(page, { prompt: 'a kiln firing now' });
  await cardShows(page, running, 'running');
  const queued = await submitFromPage(page, { prompt: 'a kiln that waits its turn' });
  const queuedCard = await cardShows(page, queued, 'queued');
  await queuedCard.locator('.waiting', { hasText: 'waiting for one of your running slots' }).waitFor();
  // Where it stands as the page read it with the job, which it does again every 5 s: as its GET says.
  const { queue } = await getJob(user, queued);
  assert.ok(queue, 'a queued job read alone says where it stands');
  assert.match(
    (await queuedCard.locator('.waiting').textContent()) ?? '',
    new RegExp(`· ${queue.queuePosition} ahead now · `),
  );
  const expired = await submitFromPage(page, { prompt: 'a kiln that could not wait', startWithinSeconds: 1 });
  const expiredCard = await cardShows(page, expired, 'expired');
  assert.match((await expiredCard.locator('.ending').textContent()) ?? '', /^Expired: /);
  assert.equal(await card(page, running).getAttribute('data-status'), 'running');
  assert.equal(await card(page, queued).getAttribute('data-status'), 'queued');
  await screenshot(page, 'grid-every-status');

  await page.getByLabel('Show status').selectOption('failed');
  await until(
    () => shownJobIds(page),
    (ids) => ids.length === 1 && ids[0] === failed,
    'the failed jobs',
  );
  await page.getByLabel('Show status').selectOption('');
  await page.getByLabel('Show kind').selectOption('text');
  await page.locator('#empty').waitFor();
  await closePlayground(playground);
});

test('a card opens its detail: prompt, parameters, result, download, events, retry and the Temporal link', async () => {
  const user = await freshUser(stack);
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
  const { page } = playground;
  const jobId = await submitFromPage(page, { prompt: 'a kiln in full detail' });
  await cardShows(page, jobId, 'succeeded');
  // By keyboard: the card's prompt is a button that opens the dialog, and Escape closes it.
  await card(page, jobId).locator('.card-open').focus();
  await page.keyboard.press('Enter');
  const detail = page.getByRole('dialog');
  await detail.waitFor();
  assert.equal(await detail.locator('#detail-title').textContent(), `Job ${jobId}`);
  assert.equal(await detail.locator('#detail-prompt').textContent(), 'a kiln in full detail');
  const params = await detail.locator('#detail-params').innerText();
  assert.match(params, /Provider\s+local/);
  assert.match(params, /Size\s+256x256/);
  const image = detail.locator('#detail-result img');
  await image.waitFor();
  assert.equal(await decodedWidth(image), 256);
  // The events from the first: queued, running, progress…, storing, succeeded.
  await detail.locator('#detail-timeline li', { hasText: 'succeeded' }).waitFor();
  const events = await detail.locator('#detail-timeline li').allInnerTexts();
  assert.match(events[0] ?? '', /^#1 queued/);
  assert.ok(
    events.some((event) => /progress \d+%/.test(event)),
    events.join('\n'),
  );
  const href = await detail.getByRole('link', { name: 'Open in Temporal UI' }).getAttribute('href');
  assert.equal(
    href,
    `${stack.ctx.config.codecServer.allowedOrigins[0]}/namespaces/default/workflows/${jobId}`,
  );

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    detail.getByRole('link', { name: 'Download' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `${jobId}.png`);
  const content = Buffer.from(await (await apiFetch(user, `/v1/generations/${jobId}/content`)).arrayBuffer());
  const chunks: Buffer[] = [];
  for await (const chunk of (await download.createReadStream()) ?? []) chunks.push(chunk as Buffer);
  assert.ok(Buffer.concat(chunks).equals(content), 'the download is not the job content');
  // Tall enough for the whole dialog in the picture.
  await page.setViewportSize({ width: 1280, height: 1500 });
  await screenshot(page, 'detail-view');

  await detail.getByRole('button', { name: 'Run again' }).click();
  await detail.waitFor({ state: 'hidden' });
  const again = page.locator('#jobs li.card', { hasText: 'a kiln in full detail' });
  await until(
    () => again.count(),
    (count) => count === 2,
    'cards of the prompt run again',
  );
  const retriedId = (await again.first().getAttribute('data-job-id')) ?? '';
  assert.notEqual(retriedId, jobId);
  await card(page, retriedId).locator('.card-open').focus();
  await page.keyboard.press('Enter');
  await detail.getByRole('button', { name: 'Cancel' }).click();
  await detail.locator('#detail-state', { hasText: /^canceling…/ }).waitFor();
  await detail.locator('#detail-state', { hasText: /^canceled/ }).waitFor();
  await page.keyboard.press('Escape');
  await detail.waitFor({ state: 'hidden' });
  await closePlayground(playground);
});

test('a job its provider could not serve says which fallback served it and why, and costs what that one charged', async () => {
  const user = await freshUser(stack, { credits: 20 });
  const callsBefore = stack.openai.requests.length;
  stack.openai.setBehaviour({ kind: 'server_error', status: 503 });
  try {
    const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
    const { page } = playground;
    const prompt = 'a kiln whose first provider is down';
    const jobId = await submitFromPage(page, { prompt, provider: 'openai', model: 'dall-e-2' });
    const shown = await cardShows(page, jobId, 'succeeded');
    const job = await getJob(user, jobId);
    assert.deepEqual(job.servedBy.switched, {
      from: { provider: 'openai', model: 'dall-e-2' },
      reason: 'provider_unavailable',
    });
    assert.ok(stack.openai.requests.length - callsBefore >= 2, 'the failing provider was called first');
    const served = 'served by local/kiln-sketch-1 instead of openai/dall-e-2: it was unavailable';
    assert.equal(await shown.locator('.fallback').textContent(), served);
    // The card still says what the job was submitted for; the line above says who made the image.
    assert.match((await shown.locator('.meta').textContent()) ?? '', /^image · openai\/dall-e-2 · 256x256$/);
    await shown.locator('img').waitFor();

    // Reserved at dall-e-2's price, charged local's: the card says what the ledger did.
    const { credits } = job;
    assert.ok(credits, JSON.stringify(job));
    assert.deepEqual([credits.reserved, credits.settled, credits.refunded], [5, 1, 4]);
    const charged = `${credits.settled} credit (${credits.refunded} of ${credits.reserved} reserved refunded)`;
    await shown.locator('.cost', { hasText: charged }).waitFor();
    assert.equal(await shown.locator('.cost').textContent(), charged);
    await page.locator('#balance', { hasText: 'Your balance: 19 credits (0 reserved).' }).waitFor();
    await screenshot(page, 'fallback-served');

    await shown.locator('.card-open').click();
    const detail = page.getByRole('dialog');
    await detail.locator('#detail-timeline li', { hasText: 'succeeded' }).waitFor();
    const events = await detail.locator('#detail-timeline li').allInnerTexts();
    const switched = events.findIndex((event) => event.includes(served));
    assert.ok(switched >= 0, events.join('\n'));
    assert.ok(switched < events.findIndex((event) => /^#\d+ succeeded/.test(event)), events.join('\n'));
    await detail.locator('#detail-params dd', { hasText: charged }).waitFor();
    await closePlayground(playground);
  } finally {
    stack.openai.setBehaviour({ kind: 'ok' });
  }
});

test('a text job in the detail view can be copied', async () => {
  const user = await freshUser(stack);
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
  const { page } = playground;
  const jobId = await submitFromPage(page, { prompt: 'a short poem to copy', kind: 'text' });
  await cardShows(page, jobId, 'succeeded');
  await card(page, jobId).locator('.card-open').click();
  const content = await (await apiFetch(user, `/v1/generations/${jobId}/content`)).text();
  await page.locator('#detail-result pre', { hasText: content }).waitFor();
  await page.getByRole('button', { name: 'Copy text' }).click();
  await page.locator('#detail-copied', { hasText: 'Copied.' }).waitFor();
  assert.equal(await page.evaluate('navigator.clipboard.readText()'), content);
  await closePlayground(playground);
});

test("past a page of jobs, older ones are read with the API's cursor", async () => {
  const user = await freshUser(stack);
  const ids: string[] = [];
  for (let i = 0; i < 14; i += 1) {
    const { body } = await submit(user, { kind: 'text', prompt: `job ${i}` }, randomUUID());
    ids.push(String(body.id));
  }
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
  const { page } = playground;
  const shown = () => shownJobIds(page);
  await until(shown, (list) => list.length === 12, 'the first page');
  assert.deepEqual(await shown(), ids.slice(2).reverse());
  // Not submitted from this browser: the card says so instead of showing a prompt.
  assert.equal(
    await card(page, ids[13]!).locator('.card-open').textContent(),
    'Prompt not kept in this browser',
  );
  await page.getByRole('button', { name: 'Show older jobs' }).click();
  await until(shown, (list) => list.length === 14, 'both pages');
  assert.deepEqual(await shown(), [...ids].reverse());
  await page.getByRole('button', { name: 'Show older jobs' }).waitFor({ state: 'hidden' });
  await closePlayground(playground);
});

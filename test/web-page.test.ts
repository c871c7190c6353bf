import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { findJob } from '../src/db/job-repository.js';
import { creditsForUsage } from '../src/jobs/token-pricing.js';
import { apiFetch, getJob, submit } from './harness/job-watcher.js';
import {
  card,
  cardProgress,
  cardShows,
  closePlayground,
  decodedWidth,
  freshUser,
  LOCAL_TEXT_PRICE,
  openPlayground,
  screenshot,
  startPlaygroundStack,
  submitFromPage,
  until,
  type PlaygroundStack,
} from './harness/playground-page.js';

/*
 * The page at `/` in Chromium: its form, a job live on its card, the socket lost and found again, a text
 * job's tokens, refusals, a phone's screen. Its grid and detail view: web-page-jobs.test.ts.
 */

let stack: PlaygroundStack;

before(async () => {
  stack = await startPlaygroundStack();
});
after(async () => {
  await stack?.browser.close();
  await stack?.ctx.cleanup();
});

async function optionsOf(page: Page, label: string): Promise<string[]> {
  return page.getByLabel(label, { exact: true }).locator('option').allTextContents();
}

test('the empty page offers only configured providers, with prices and the balance, and keeps the form', async () => {
  const user = await freshUser(stack, { credits: 50 });
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
  const { page } = playground;
  await page.locator('#empty').waitFor();
  await page.locator('#balance', { hasText: 'Your balance: 50 credits (0 reserved).' }).waitFor();
  const listed = await (await apiFetch(user, '/v1/providers')).json();
  const offered = (kind: string) =>
    (listed as { data: { kind: string; name: string }[] }).data
      .filter((p) => p.kind === kind)
      .map((p) => p.name);
  assert.deepEqual(await optionsOf(page, 'Provider'), offered('image'));
  assert.deepEqual(await optionsOf(page, 'Provider'), ['local', 'openai']);
  // The default provider is the one chosen; the others are there to pick.
  assert.equal(await page.getByLabel('Provider', { exact: true }).inputValue(), 'local');
  await page.getByLabel('Size', { exact: true }).selectOption('1024x1024');
  assert.equal(await page.locator('#price').textContent(), 'This job costs 3 credits.');
  await page.getByLabel('Size', { exact: true }).selectOption('256x256');
  assert.equal(await page.locator('#price').textContent(), 'This job costs 1 credit.');
  await screenshot(page, 'empty-page');

  await page.getByLabel('Kind', { exact: true }).selectOption('text');
  assert.deepEqual(await optionsOf(page, 'Provider'), offered('text'));
  assert.equal(await page.getByLabel('Provider', { exact: true }).inputValue(), 'local');
  assert.deepEqual(await optionsOf(page, 'Model'), ['kiln-verse-1']);
  assert.equal(await page.getByLabel('Size', { exact: true }).isDisabled(), true);
  await page.getByLabel('Prompt', { exact: true }).fill('a poem kept across a reload');
  await page.getByLabel('Max tokens', { exact: true }).fill('64');
  // Priced by its tokens: it reserves its prompt's 27 bytes + 16 and its 64 tokens, ⌈0.86 + 6.4⌉.
  assert.equal(
    await page.locator('#price').textContent(),
    'This job reserves 8 credits and is charged for the tokens it uses (20000 in, 100000 out per million).',
  );
  await page.reload();
  await page.locator('#app').waitFor();
  assert.equal(await page.getByLabel('Kind', { exact: true }).inputValue(), 'text');
  assert.equal(await page.getByLabel('Prompt', { exact: true }).inputValue(), 'a poem kept across a reload');
  assert.equal(await page.getByLabel('Max tokens', { exact: true }).inputValue(), '64');
  await closePlayground(playground);
});

test('a job runs live on its card, shows its prompt and timings, and is picked up again after a reload', async () => {
  const user = await freshUser(stack);
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
  const { page } = playground;
  const jobId = await submitFromPage(page, { prompt: 'a kiln seen from a browser' });
  await cardShows(page, jobId, 'running');
  await until(
    () => cardProgress(page, jobId),
    (progress) => (progress ?? 0) > 0,
    'the progress bar',
  );
  const shown = card(page, jobId);
  assert.match((await shown.textContent()) ?? '', /image · local\/kiln-sketch-1 · 256x256/);
  assert.match((await shown.locator('.cost').textContent()) ?? '', /^1 credit, reserved$/);

  await page.reload();
  // The key came from the address once and is remembered; the job is followed again from its version.
  assert.equal(new URL(page.url()).hash, '');
  await cardShows(page, jobId, 'succeeded');
  const image = shown.locator('img');
  await image.waitFor();
  assert.equal(await decodedWidth(image), 256);
  assert.equal(await shown.locator('.card-open').textContent(), 'a kiln seen from a browser');
  assert.match((await shown.locator('.timings').textContent()) ?? '', /^queued .+ · ran .+ · total .+$/);
  assert.equal(await shown.locator('.cost').textContent(), '1 credit');
  assert.equal((await findJob(stack.ctx.database.db, jobId))?.status, 'succeeded');
  await closePlayground(playground);
});

test('with the socket cut, the page shows it is reconnecting, polls, and takes the socket up again', async () => {
  const user = await freshUser(stack);
  let cut = true;
  // While cut, every socket the page opens is closed at once, before the server sees it.
  const prepare = (page: Page) =>
    page.routeWebSocket('**/v1/stream', (socket) => {
      if (cut) void socket.close();
      else socket.connectToServer();
    });
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey, prepare });
  const { page } = playground;
  const jobId = await submitFromPage(page, { prompt: 'a kiln through a bad connection' });
  await page.locator('#reconnecting').waitFor();
  // Polling follows the job while the socket is out of reach.
  await until(
    () => cardProgress(page, jobId),
    (progress) => (progress ?? 0) > 0,
    'the progress bar, polled',
  );
  cut = false;
  await cardShows(page, jobId, 'succeeded');
  await page.locator('#reconnecting').waitFor({ state: 'hidden' });
  await card(page, jobId).locator('img').waitFor();
  await closePlayground(playground);
});

test('a text job shows its tokens and their count as they arrive, and its whole text once done', async () => {
  const user = await freshUser(stack);
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey });
  const { page } = playground;
  const jobId = await submitFromPage(page, { prompt: 'a poem about a kiln', kind: 'text' });
  const shown = card(page, jobId);
  const tokens = async () =>
    Number(/(\d+) tokens?/.exec((await shown.locator('.meta').textContent()) ?? '')?.[1]);
  await until(tokens, (count) => count >= 3, 'the token count');
  // Still running, its bar is indeterminate rather than stuck at 0, and part of the text shows.
  assert.equal(await shown.getAttribute('data-status'), 'running');
  assert.equal(await cardProgress(page, jobId), null);
  const partial = (await shown.locator('.text-result').textContent()) ?? '';
  assert.ok(partial.split(' ').length >= 3, partial);
  await cardShows(page, jobId, 'succeeded');
  const content = await (await apiFetch(user, `/v1/generations/${jobId}/content`)).text();
  await shown.locator('.text-result', { hasText: content }).waitFor();
  assert.ok(content.startsWith(partial.trim()), `${JSON.stringify(partial)} does not start ${content}`);
  // Charged the tokens it used, as the ledger says, read again once the job ended.
  const { usage, credits } = await getJob(user, jobId);
  assert.ok(usage && credits?.settled && credits.refunded, JSON.stringify({ usage, credits }));
  assert.equal(credits.settled, creditsForUsage(LOCAL_TEXT_PRICE, usage));
  const charged = `${credits.settled} credits (${credits.refunded} of ${credits.reserved} reserved refunded)`;
  await shown.locator('.cost', { hasText: charged }).waitFor();
  await closePlayground(playground);
});

test('a refusal is explained next to the field it concerns: 400, 402 and 429', async () => {
  const broke = await freshUser(stack, { credits: 0 });
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: broke.apiKey });
  const { page } = playground;
  await page.getByLabel('Prompt', { exact: true }).fill('   ');
  await page.getByRole('button', { name: 'Generate' }).click();
  await page.locator('#prompt-error', { hasText: /^prompt: / }).waitFor();
  await page.getByLabel('Prompt', { exact: true }).fill('a kiln on credit');
  await page.getByRole('button', { name: 'Generate' }).click();
  await page.locator('#cost-error', { hasText: 'This job costs 1 credit and your balance is 0.' }).waitFor();
  assert.equal(await page.locator('#prompt-error').isHidden(), true);

  // Refused submissions use the key's submit tokens too: these use up its burst.
  const statuses: number[] = [];
  while (statuses.at(-1) !== 429) {
    assert.ok(statuses.length < 100, `never refused for its rate: ${statuses.join()}`);
    statuses.push((await submit(broke, { kind: 'image', prompt: '' }, randomUUID())).status);
  }
  await page.getByRole('button', { name: 'Generate' }).click();
  await page
    .locator('#submit-error', { hasText: /^Too many submissions: .* Try again in \d+ s\.$/ })
    .waitFor();
  await closePlayground(playground, /status of (400|402|429)/);
});

test('on a phone-sized screen the page fits its width and a card still opens', async () => {
  const user = await freshUser(stack);
  const phone = { width: 390, height: 844 };
  const playground = await openPlayground(stack.browser, stack.api, { apiKey: user.apiKey, viewport: phone });
  const { page } = playground;
  const text = await submitFromPage(page, { prompt: 'a haiku on a small screen', kind: 'text' });
  const image = await submitFromPage(page, { prompt: 'a kiln in a pocket' });
  await cardShows(page, text, 'succeeded');
  await cardShows(page, image, 'succeeded');
  await card(page, image).locator('img').waitFor();
  const widths = await page.evaluate<{ scroll: number; view: number }>(
    '({ scroll: document.documentElement.scrollWidth, view: innerWidth })',
  );
  assert.ok(widths.scroll <= widths.view, `the page is ${widths.scroll}px wide on a ${widths.view}px screen`);
  const cardBox = await card(page, image).boundingBox();
  assert.ok(cardBox && cardBox.x >= 0 && cardBox.x + cardBox.width <= phone.width, JSON.stringify(cardBox));
  await screenshot(page, 'phone-layout');
  await card(page, image).click();
  await page.getByRole('dialog').waitFor();
  await closePlayground(playground);
});

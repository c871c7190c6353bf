import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { findJob } from '../src/db/job-repository.js';
import { submit, type ApiTarget } from './harness/job-watcher.js';
import { launchChromium } from './harness/chromium.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

let ctx: TestContext;
let api: ApiTarget;
let browser: Browser;

before(async () => {
  // Long enough to reload and to go offline while the job runs.
  ctx = await createTestContext({
    LOCAL_PROVIDER_DELAY_MS: '5000',
    LOCAL_PROVIDER_STEPS: '10',
    // `solo` runs one job at a time: its second job waits, and says why.
    PLANS: JSON.stringify({ free: { maxRunning: 50, weight: 1 }, solo: { maxRunning: 1, weight: 1 } }),
  });
  await startWorker(ctx);
  api = await startApi(ctx);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await ctx.cleanup();
});

/** Waits until the current job's status reads `status` (a regular expression's source). */
function statusShown(page: Page, status: string, timeout = 30_000): Promise<void> {
  return page.locator('#current-status', { hasText: new RegExp(`^(${status})$`) }).waitFor({ timeout });
}

async function submitFromPage(page: Page, prompt: string, expected = 'running'): Promise<string> {
  await page.getByLabel('Prompt').fill(prompt);
  await page.getByLabel('Size').selectOption('256x256');
  await page.getByRole('button', { name: 'Generate' }).click();
  await statusShown(page, expected);
  return (await page.locator('#current').getAttribute('data-job-id')) ?? '';
}

/** The progress bar's value; setting `.value` in the page reflects to the attribute. */
async function progressOf(page: Page): Promise<number> {
  return Number(await page.locator('#current-progress').getAttribute('value'));
}

async function waitForProgress(page: Page): Promise<void> {
  while ((await progressOf(page)) === 0) await new Promise((resolve) => setTimeout(resolve, 100));
}

/** Waits for success and returns the shown image's decoded width. */
async function waitForImage(page: Page): Promise<number> {
  await statusShown(page, 'succeeded');
  const image = page.locator('#current-image');
  await image.waitFor({ state: 'visible' });
  return image.evaluate(async (img: { decode(): Promise<void>; naturalWidth: number }) => {
    await img.decode();
    return img.naturalWidth;
  });
}

test('the page submits, shows live progress and the image, and resumes a job after a reload', async () => {
  const page = await browser.newPage();
  await page.goto(`${api.url}/#key=${api.apiKey}`);
  const jobId = await submitFromPage(page, 'a kiln seen from a browser');
  assert.match(jobId, /^job_[0-9a-f]{32}$/);
  await waitForProgress(page);

  await page.reload();
  // The key came from the address once and is remembered; the job is picked up from its events.
  assert.equal(new URL(page.url()).hash, '');
  assert.equal(await waitForImage(page), 256);
  assert.equal(await page.locator('#current').getAttribute('data-job-id'), jobId);
  assert.equal(await progressOf(page), 100);
  assert.equal((await findJob(ctx.database.db, jobId))?.status, 'succeeded');
  const card = page.locator(`#history li[data-job-id="${jobId}"]`);
  await card.locator('img').waitFor({ state: 'visible' });
  assert.match((await card.textContent()) ?? '', /succeeded/);

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}web-page.png`, fullPage: true });
  await page.close();
});

test('with the event stream cut, the page shows it is reconnecting, polls, and resumes the stream', async () => {
  const page = await browser.newPage();
  await page.goto(`${api.url}/#key=${api.apiKey}`);
  const streamCut = '**/v1/generations/*/events';
  await page.route(streamCut, (route) => route.abort('connectionreset'));
  const jobId = await submitFromPage(page, 'a kiln through a bad connection', 'queued|running');
  await page.locator('#reconnecting').waitFor({ state: 'visible' });
  // Polling still follows the job while the stream is out of reach.
  await waitForProgress(page);
  await page.unroute(streamCut);
  assert.equal(await waitForImage(page), 256);
  await page.locator('#reconnecting').waitFor({ state: 'hidden' });
  assert.equal(await page.locator('#current').getAttribute('data-job-id'), jobId);
  await page.close();
});

/** Waits until the current job's text satisfies `done`. */
async function textShown(page: Page, done: (text: string) => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!done((await page.locator('#current-text').textContent()) ?? '')) {
    assert.ok(Date.now() < deadline, 'the text never showed');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a text job shows its words as they stream, and its text once done, also after a reload', async () => {
  const page = await browser.newPage();
  await page.goto(`${api.url}/#key=${api.apiKey}`);
  await page.getByLabel('Kind').selectOption('text');
  assert.equal(await page.getByLabel('Size').isDisabled(), true);
  await page.getByLabel('Prompt').fill('a poem about a kiln');
  await page.getByRole('button', { name: 'Generate' }).click();
  await statusShown(page, 'running');
  const text = page.getByLabel('generated text');
  // The local model writes a word per step: part of the text shows while the job still runs.
  await textShown(page, (shown) => shown.split(' ').length >= 3);
  assert.equal(await page.locator('#current-status').textContent(), 'running');
  const partial = (await text.textContent()) ?? '';
  await page.reload();
  await statusShown(page, 'succeeded');
  await textShown(page, (shown) => shown.endsWith('.'));
  const jobId = (await page.locator('#current').getAttribute('data-job-id')) ?? '';
  const content = await fetch(`${api.url}/v1/generations/${jobId}/content`, {
    headers: { Authorization: `Bearer ${api.apiKey}` },
  });
  const final = await content.text();
  assert.equal(await text.textContent(), final);
  assert.ok(
    final.startsWith(partial),
    `${JSON.stringify(partial)} is not how ${JSON.stringify(final)} starts`,
  );
  const card = page.locator(`#history li[data-job-id="${jobId}"]`);
  await card.locator('p', { hasText: final }).waitFor({ state: 'visible' });
  await page.screenshot({ path: `${ARTIFACTS}web-page-text.png`, fullPage: true });
  await page.close();
});

test('cancel on the page cancels the job', async () => {
  const page = await browser.newPage();
  await page.goto(`${api.url}/#key=${api.apiKey}`);
  const jobId = await submitFromPage(page, 'a kiln never fired');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await statusShown(page, 'canceled');
  assert.equal((await findJob(ctx.database.db, jobId))?.status, 'canceled');
  await page.close();
});

test('a job that waits says why, in words', async () => {
  const solo = { url: api.url, apiKey: (await ctx.createUser({ plan: 'solo' })).apiKey };
  const ahead = { kind: 'image', prompt: 'a kiln ahead', params: { size: '256x256' } };
  assert.equal((await submit(solo, ahead, randomUUID())).status, 202);
  const page = await browser.newPage();
  await page.goto(`${api.url}/#key=${solo.apiKey}`);
  await submitFromPage(page, 'a kiln that waits its turn', 'queued');
  const detail = page.locator('#current-detail', { hasText: 'waiting for one of your running slots' });
  await detail.waitFor({ timeout: 10_000 });
  await statusShown(page, 'running');
  assert.equal(await page.locator('#current-detail').textContent(), '');
  await page.close();
});

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, Locator, Page } from 'playwright-core';
import { startFakeOpenAIImagesServer, type FakeOpenAIImagesServer } from '../fakes/openai-images-server.js';
import { launchChromium } from './chromium.js';
import type { ApiTarget } from './job-watcher.js';
import { startApi, startWorker } from './kiln-processes.js';
import { createTestContext, type TestContext } from './test-context.js';

/** Where the page's screenshots go (git-ignored with the rest of test/artifacts). */
export const SCREENSHOTS = fileURLToPath(new URL('../artifacts/screenshots/', import.meta.url));

/**
 * A test context with a worker and an API that the page is driven against, and the browser. Its `openai`
 * provider is the fake server, falling back on `local`, which stays the default and never fails.
 */
export interface PlaygroundStack {
  ctx: TestContext;
  api: ApiTarget;
  browser: Browser;
  openai: FakeOpenAIImagesServer;
}

/** The stack's text model is priced by the tokens a job uses. */
export const LOCAL_TEXT_PRICE = { since: '2026-01-01', inputPerMillion: 20_000, outputPerMillion: 100_000 };

/** `openai:dall-e-2` jobs move to local's sketch model when the fake keeps failing. */
export const FALLBACK_CHAINS = { 'openai:dall-e-2': [{ provider: 'local', model: 'kiln-sketch-1' }] };

export async function startPlaygroundStack(): Promise<PlaygroundStack> {
  const openai = await startFakeOpenAIImagesServer();
  const ctx = await createTestContext({
    OPENAI_API_KEY: openai.apiKey,
    OPENAI_BASE_URL: openai.url,
    FALLBACK_CHAINS: JSON.stringify(FALLBACK_CHAINS),
    // Two failed calls and the job moves on, a few hundred ms after it started.
    FALLBACK_AFTER_FAILED_CALLS: '2',
    PROVIDER_BACKOFF_INITIAL_MS: '200',
    PROVIDER_BACKOFF_MAX_MS: '400',
    // Long enough to reload, cancel and cut the socket while a job runs, and for the every-status grid
    // to show a job running after its queued neighbour's card was read again (every 5 s) on a loaded CI.
    LOCAL_PROVIDER_DELAY_MS: '12000',
    LOCAL_PROVIDER_STEPS: '10',
    // `solo` runs one job at a time: its next job waits, and says why.
    PLANS: JSON.stringify({ free: { maxRunning: 50, weight: 1 }, solo: { maxRunning: 1, weight: 1 } }),
    // dall-e-2 dearer than its fallback: a job it hands on is charged less than it reserved.
    JOB_COSTS: JSON.stringify({ 'local:kiln-sketch-1:1024x1024': 3, 'openai:dall-e-2:256x256': 5 }),
    TEXT_TOKEN_PRICES: JSON.stringify({ 'local:kiln-verse-1': [LOCAL_TEXT_PRICE] }),
    // Per key: more than any test submits, few enough for one to reach 429 on purpose.
    SUBMIT_RATE_PER_MINUTE: '60',
    SUBMIT_BURST: '20',
  });
  // Registered first, undone last: after the worker that calls it has stopped.
  ctx.onCleanup(() => openai.close());
  await startWorker(ctx);
  return { ctx, api: await startApi(ctx), browser: await launchChromium(), openai };
}

/** A user of its own, so that each test's grid holds only its jobs. */
export async function freshUser(
  { ctx, api }: PlaygroundStack,
  options: { plan?: string; credits?: number } = {},
): Promise<ApiTarget> {
  return { url: api.url, apiKey: (await ctx.createUser(options)).apiKey };
}

/** Waits until `read` (polled) satisfies `done`: what the page shows moves with the job. */
export async function until<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
): Promise<T> {
  const giveUp = Date.now() + 30_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    assert.ok(Date.now() < giveUp, `${what}: still ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** An <img>'s width once decoded (the tests are compiled without the DOM's types). */
export function decodedWidth(image: Locator): Promise<number> {
  return image.evaluate((img: { decode(): Promise<void>; naturalWidth: number }) =>
    img.decode().then(() => img.naturalWidth),
  );
}

/** The page at `/`, and every console error and uncaught exception it has had. */
export interface Playground {
  page: Page;
  errors: string[];
}

export interface PlaygroundOptions {
  apiKey?: string;
  viewport?: { width: number; height: number };
  /** Runs before the page loads: routes set here apply to the page's first socket too. */
  prepare?: (page: Page) => Promise<void>;
}

/** Opens the page with the API key in the address, as `npm start` prints it. */
export async function openPlayground(
  browser: Browser,
  api: ApiTarget,
  { apiKey = api.apiKey, viewport = { width: 1280, height: 900 }, prepare }: PlaygroundOptions = {},
): Promise<Playground> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: api.url });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  await prepare?.(page);
  await page.goto(`${api.url}/#key=${apiKey}`);
  await page.locator('#app').waitFor();
  return { page, errors };
}

/**
 * Closes the page once it had no console error, other than those `expected` matches (Chromium logs
 * every refused request, answered or not, and every socket it could not open).
 */
export async function closePlayground({ page, errors }: Playground, expected?: RegExp): Promise<void> {
  assert.deepEqual(
    errors.filter((error) => !expected?.test(error)),
    [],
  );
  await page.context().close();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

export function card(page: Page, jobId: string): Locator {
  return page.locator(`#jobs li[data-job-id="${jobId}"]`);
}

/** The ids of the cards in the grid, in its order. */
export async function shownJobIds(page: Page): Promise<string[]> {
  const cards = await page.locator('#jobs li').all();
  return Promise.all(cards.map(async (shown) => (await shown.getAttribute('data-job-id')) ?? ''));
}

/** Waits until the job's card shows `status` (`canceling` while a cancel is on its way). */
export async function cardShows(
  page: Page,
  jobId: string,
  status: string,
  timeout = 30_000,
): Promise<Locator> {
  const shown = page.locator(`#jobs li[data-job-id="${jobId}"][data-status="${status}"]`);
  await shown.waitFor({ timeout });
  return shown;
}

export interface PageSubmission {
  prompt: string;
  kind?: 'image' | 'text';
  /** The provider and model to pick; the form's defaults (local's) when unset. */
  provider?: string;
  model?: string;
  size?: string;
  startWithinSeconds?: number;
  finishWithinSeconds?: number;
}

/** Fills the form, presses Generate and returns the id of the new job's card (prompts are unique per test). */
export async function submitFromPage(page: Page, submission: PageSubmission): Promise<string> {
  await page.getByLabel('Kind', { exact: true }).selectOption(submission.kind ?? 'image');
  if (submission.provider)
    await page.getByLabel('Provider', { exact: true }).selectOption(submission.provider);
  if (submission.model) await page.getByLabel('Model', { exact: true }).selectOption(submission.model);
  await page.getByLabel('Prompt', { exact: true }).fill(submission.prompt);
  if (submission.kind !== 'text')
    await page.getByLabel('Size', { exact: true }).selectOption(submission.size ?? '256x256');
  const deadlines = [submission.startWithinSeconds, submission.finishWithinSeconds];
  if (deadlines.some((seconds) => seconds !== undefined)) {
    const section = page.locator('#deadlines');
    if ((await section.getAttribute('open')) === null) await section.locator('summary').click();
    await page.getByLabel('Start within (s)').fill(String(deadlines[0] ?? ''));
    await page.getByLabel('Finish within (s)').fill(String(deadlines[1] ?? ''));
  }
  await page.getByRole('button', { name: 'Generate' }).click();
  const created = page.locator('#jobs li.card', { hasText: submission.prompt }).first();
  await created.waitFor();
  const jobId = (await created.getAttribute('data-job-id')) ?? '';
  assert.match(jobId, /^job_[0-9a-f]{32}$/);
  if (deadlines.some((seconds) => seconds !== undefined)) {
    await page.getByLabel('Start within (s)').fill('');
    await page.getByLabel('Finish within (s)').fill('');
  }
  return jobId;
}

/** The progress bar's value on the job's card; null while it is indeterminate. */
export async function cardProgress(page: Page, jobId: string): Promise<number | null> {
  const value = await card(page, jobId).locator('progress').getAttribute('value');
  return value === null ? null : Number(value);
}

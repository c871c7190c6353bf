import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { startTemporalDevServer, type TemporalDevServer } from '../src/devstack/temporal-dev-server.js';
import { freePort } from './harness/free-port.js';
import { pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { launchChromium } from './harness/chromium.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const ADMIN_KEY = randomBytes(32).toString('base64url');

let dev: TemporalDevServer;
let ctx: TestContext;
let api: ApiTarget;
let browser: Browser;
let codecUrl: string;

before(async () => {
  const [port, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  codecUrl = `http://127.0.0.1:${apiPort}/codec`;
  // A dev server of its own: the shared one runs headless. Its UI is the one the CLI embeds (2.54.1).
  dev = await startTemporalDevServer({ port, uiPort, extraArgs: ['--ui-codec-endpoint', codecUrl] });
  ctx = await createTestContext(
    {
      ADMIN_API_KEY: ADMIN_KEY,
      PAYLOAD_ENCRYPTION_KEYS: `ui:${randomBytes(32).toString('base64')}`,
      CODEC_ALLOWED_ORIGINS: dev.uiUrl ?? '',
    },
    { KILN_TEST_TEMPORAL_ADDRESS: dev.address },
  );
  await startWorker(ctx);
  api = await startApi(ctx, { port: apiPort });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await ctx?.cleanup();
  await dev?.stop();
});

test('the Temporal Web UI shows an encrypted prompt once the browser has signed in to /codec with the admin key', async () => {
  const prompt = `ui secret ${randomUUID()}`;
  const id = String((await submit(api, { kind: 'image', prompt }, randomUUID())).body.id);
  assert.equal((await pollUntilDone(api, id)).status, 'succeeded');

  const context = await browser.newContext();
  // The UI's own codec settings (its local storage), as an operator sets them in its settings panel.
  await context.addInitScript(`
    localStorage.setItem('endpoint', ${JSON.stringify(JSON.stringify(codecUrl))});
    localStorage.setItem('includeCredentials', 'true');
    localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
  `);
  const page = await context.newPage();
  const workflowPage = `${dev.uiUrl}/namespaces/${ctx.config.temporal.namespace}/workflows/${id}`;
  const input = page.getByText('"prompt"', { exact: false }).first();

  await page.goto(workflowPage);
  await page.getByText(id).first().waitFor();
  // UI 2.54 asks `/decode?preserveStorageRefs=true`: the path is what names the codec call.
  const isDecode = (url: string) => new URL(url).pathname === new URL(`${codecUrl}/decode`).pathname;
  const decodeRefused = page.waitForResponse((r) => isDecode(r.url()) && r.status() === 401);
  await page.reload();
  await decodeRefused;
  assert.ok(!(await page.content()).includes(prompt), 'the UI showed the prompt without the admin key');

  // What a browser's Basic prompt does: it remembers the key for the codec's origin.
  const signedIn = await page.goto(`http://operator:${ADMIN_KEY}@${new URL(codecUrl).host}/codec`);
  assert.equal(signedIn?.status(), 200);
  await page.goto(workflowPage);
  await input.waitFor({ timeout: 20_000 });
  await page.getByText(prompt).first().waitFor({ timeout: 20_000 });
  await context.close();
});

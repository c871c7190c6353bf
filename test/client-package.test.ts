import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';
import type { ApiTarget } from './harness/job-watcher.js';

/*
 * The client as its users get it: `npm pack` in src/client (its prepack builds it), the tarball installed
 * offline into an empty project, then used there by plain node and type-checked by a consumer that has
 * no Node types. Nothing here loads tsx or the repository's sources.
 */

const CLIENT_DIR = fileURLToPath(new URL('../src/client/', import.meta.url));
const TSC = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const execFileAsync = promisify(execFile);

let ctx: TestContext;
let api: ApiTarget;
let project: string;
let packedFiles: string[];

/** The environment without what `npm test` (itself an npm script) or the test runner set for themselves. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const kept = Object.entries(process.env).filter(
    ([name]) => !/^npm_/i.test(name) && name !== 'NODE_OPTIONS',
  );
  return { ...Object.fromEntries(kept), ...extra };
}

async function exec(command: string, args: string[], cwd: string, env?: Record<string, string>) {
  const { stdout } = await execFileAsync(command, args, { cwd, env: cleanEnv(env), timeout: 120_000 });
  return stdout;
}

async function installPackedClient(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-client-package-'));
  ctx.onCleanup(() => rm(dir, { recursive: true, force: true }));
  const packed = JSON.parse(await exec('npm', ['pack', '--json', '--pack-destination', dir], CLIENT_DIR)) as [
    { filename: string; files: { path: string }[] },
  ];
  packedFiles = packed[0].files.map((file) => file.path);
  project = path.join(dir, 'project');
  await mkdir(project);
  await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-kiln', type: 'module' }));
  const tarball = path.join(dir, packed[0].filename);
  await exec('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], project);
}

before(async () => {
  ctx = await createTestContext({ LOCAL_PROVIDER_DELAY_MS: '1200', LOCAL_PROVIDER_STEPS: '4' });
  await startWorker(ctx);
  api = await startApi(ctx);
  await installPackedClient();
});
after(() => ctx.cleanup());

test('the tarball holds the built modules and their declarations, and nothing else', () => {
  assert.ok(packedFiles.includes('dist/index.js') && packedFiles.includes('dist/index.d.ts'));
  const unexpected = packedFiles.filter(
    (file) => file !== 'package.json' && !/^dist\/[\w-]+\.(js|d\.ts)$/.test(file),
  );
  assert.deepEqual(unexpected, []);
});

test('plain node imports it from an installed folder', async () => {
  const script =
    "import('@kiln/client').then((kiln) => console.log(JSON.stringify(Object.keys(kiln).sort())))";
  const exported = JSON.parse(await exec(process.execPath, ['-e', script], project)) as string[];
  assert.deepEqual(exported, [
    'JOB_STATUSES',
    'KilnApiError',
    'KilnJobError',
    'createKilnClient',
    'describeWaiting',
    'isTerminal',
  ]);
});

/** Runs in the installed project with plain node: an image, a text with its tokens, and a failure. */
const RUN_SCRIPT = `
import { createKilnClient, KilnJobError } from '@kiln/client';
const kiln = createKilnClient({ baseUrl: process.env.KILN_URL, apiKey: process.env.KILN_API_KEY });
const updates = [];
const image = await kiln.run(
  { kind: 'image', prompt: 'a packed kiln', params: { size: '256x256' } },
  { onQueueUpdate: (update) => updates.push(update.status) },
);
const tokens = [];
const text = await kiln.run({ kind: 'text', prompt: 'packed words' }, { onToken: (token) => tokens.push(token.delta) });
const late = { kind: 'image', prompt: 'too slow', params: { size: '256x256' }, deadline: { finishWithinSeconds: 1 } };
const failed = await kiln.run(late).catch((error) => error);
console.log(JSON.stringify({
  image: [image.job.status, image.image.type, image.image.size === image.job.result.byteSize],
  updates: [...new Set(updates)],
  text: [text.text, tokens.join(''), tokens.length > 1],
  failed: [failed instanceof KilnJobError, failed.code],
}));
`;

test('an installed client runs jobs to their results, tokens and typed errors', async () => {
  await writeFile(path.join(project, 'run.mjs'), RUN_SCRIPT);
  const output = await exec(process.execPath, ['run.mjs'], project, {
    KILN_URL: api.url,
    KILN_API_KEY: api.apiKey,
  });
  const seen = JSON.parse(output) as Record<string, unknown[]>;
  assert.deepEqual(seen.image, ['succeeded', 'image/png', true]);
  assert.deepEqual(seen.updates, ['queued', 'running', 'storing']);
  const [text, tokens, several] = seen.text as [string, string, boolean];
  assert.ok(text.length > 0 && several);
  assert.equal(tokens, text);
  assert.deepEqual(seen.failed, [true, 'deadline_exceeded']);
});

/** A consumer typed against the package alone: its declarations need neither Node's types nor Kiln's. */
const CONSUMER = `
import { createKilnClient, KilnJobError, type KilnJobErrorCode } from '@kiln/client';
const kiln = createKilnClient({ baseUrl: 'http://127.0.0.1:3000', apiKey: 'kiln_x' });
export const image = async (): Promise<Blob> => (await kiln.run({ kind: 'image', prompt: 'p' })).image;
export const text = async (): Promise<string> =>
  (await kiln.run({ kind: 'text', prompt: 'p', params: { maxTokens: 64 } })).text;
export function retryable(error: KilnJobError): boolean {
  const code: KilnJobErrorCode = error.code;
  return code === 'rate_limited' || code === 'provider_unavailable' || code === 'timeout';
}
// @ts-expect-error: an image job takes no token limit
export const wrong = () => kiln.run({ kind: 'image', prompt: 'p', params: { maxTokens: 1 } });
`;

test('its declarations type-check a strict consumer without Node types', async () => {
  await writeFile(path.join(project, 'consumer.ts'), CONSUMER);
  const compilerOptions = {
    strict: true,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    lib: ['es2023', 'dom'],
    types: [],
    noEmit: true,
    skipLibCheck: false,
  };
  await writeFile(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions, files: ['consumer.ts'] }),
  );
  // tsc reports its errors on stdout and exits non-zero, which rejects with them.
  await exec(process.execPath, [TSC, '-p', 'tsconfig.json'], project).catch((error: { stdout?: string }) => {
    assert.fail(`the consumer does not type-check:\n${error.stdout}`);
  });
});

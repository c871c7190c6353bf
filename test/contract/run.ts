import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { apiFetch, submit, type ApiTarget } from '../harness/job-watcher.js';
import { startApi, startWorker } from '../harness/kiln-processes.js';
import { createTestContext } from '../harness/test-context.js';

const execFileAsync = promisify(execFile);

/** Pinned: a new release may add checks or change generation, and a contract run must be repeatable. */
const SCHEMATHESIS = 'schemathesis==4.32.5';
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** One virtualenv per pin, so that changing the pin installs afresh rather than over the old one. */
const VENV = `${REPO_ROOT}.tools/${SCHEMATHESIS.replace('==', '-')}`;
const SCHEMATHESIS_BIN = `${VENV}/bin/schemathesis`;
const CONFIG_FILE = `${REPO_ROOT}test/contract/schemathesis.toml`;
const REPORT_DIR = `${REPO_ROOT}test/artifacts/contract`;
/** Cases per operation and mode in one pass of the phases; passes repeat until the run's time is up. */
const MAX_EXAMPLES = process.env.KILN_CONTRACT_EXAMPLES ?? '30';
/**
 * Seconds for the user API's operations (KILN_CONTRACT_SECONDS) and for the operator API's: a time box
 * rather than a count alone, since how long Hypothesis takes to draw a stateful scenario varies from run
 * to run (20 s to 2 min for the same count).
 */
const RUN_SECONDS = { user: Number(process.env.KILN_CONTRACT_SECONDS ?? 60), admin: 10 };
/** A run is stopped this long past its time box, whatever it is doing. */
const GRACE_MS = 60_000;
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'response_schema_conformance',
  'negative_data_rejection',
  'positive_data_acceptance',
];

async function ensureSchemathesis(): Promise<void> {
  try {
    await access(SCHEMATHESIS_BIN);
    return;
  } catch {
    console.error(`installing ${SCHEMATHESIS} into ${VENV}`);
  }
  await execFileAsync('python3', ['-m', 'venv', VENV]);
  await execFileAsync(`${VENV}/bin/pip`, ['install', '--quiet', '--disable-pip-version-check', SCHEMATHESIS]);
}

/** A `nextCursor` this caller was given: two jobs, listed one a page. */
async function givenCursor(api: ApiTarget): Promise<string> {
  for (const prompt of ['contract, first', 'contract, second']) {
    await submit(api, { kind: 'image', prompt }, randomUUID());
  }
  const page = (await (await apiFetch(api, '/v1/generations?limit=1')).json()) as { nextCursor: string };
  return page.nextCursor;
}

/**
 * Takes every delivery. Generated webhook URLs name hosts anywhere: the configuration sends every
 * submission's webhook here instead, so that no delivery leaves this machine.
 */
async function startReceiver(): Promise<Server> {
  const server = createServer((_req, res) => res.writeHead(204).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** What the configuration (schemathesis.toml) reads from the environment. */
interface RunValues {
  cursor: string;
  webhookUrl: string;
}

/** Runs Schemathesis against one API with one key; resolves to its exit code. */
function schemathesis(
  url: string,
  apiKey: string,
  values: RunValues,
  seconds: number,
  extra: string[],
): Promise<number> {
  const args = [
    `--config-file=${CONFIG_FILE}`,
    'run',
    `${url}/openapi.json`,
    `--header=Authorization: Bearer ${apiKey}`,
    `--checks=${CHECKS.join(',')}`,
    '--mode=all',
    `--max-examples=${MAX_EXAMPLES}`,
    `--max-time=${seconds}`,
    '--request-timeout=15',
    // One: Hypothesis describes strategies with Python's `ast`, which on 3.11 is not safe across threads.
    '--workers=1',
    '--report=junit',
    `--report-dir=${REPORT_DIR}`,
    ...extra,
    ...process.argv.slice(2),
  ];
  const child = spawn(SCHEMATHESIS_BIN, args, {
    stdio: 'inherit',
    // Its case store (`.schemathesis/`, for `st replay`) lands there too, out of the work tree.
    cwd: REPORT_DIR,
    env: { ...process.env, KILN_CONTRACT_CURSOR: values.cursor, KILN_CONTRACT_WEBHOOK: values.webhookUrl },
  });
  const limit = setTimeout(
    () => {
      console.error(`schemathesis still running ${GRACE_MS / 1000} s past its ${seconds} s: stopped`);
      child.kill('SIGTERM');
    },
    seconds * 1000 + GRACE_MS,
  );
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(limit);
      resolve(code ?? 1);
    }),
  );
}

/**
 * `npm run test:contract`: Schemathesis, pinned, against a Kiln stack started as the tests start one,
 * checking that `/openapi.json` says what the server enforces: documented statuses and bodies, no 5xx,
 * every request the document allows accepted, every one it refuses refused. Arguments go to
 * `schemathesis run` (`-- --seed=1234` replays a run).
 */
async function main(): Promise<number> {
  await ensureSchemathesis();
  await mkdir(REPORT_DIR, { recursive: true });
  const adminKey = randomBytes(32).toString('hex');
  const receiver = await startReceiver();
  const ctx = await createTestContext({
    ADMIN_API_KEY: adminKey,
    LOG_LEVEL: 'error',
    // The receiver is on 127.0.0.1.
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_RETRY_WINDOW_SECONDS: '2',
    // Jobs end within a second or so, however many the run has submitted before: the event streams and
    // `Prefer: wait` answers it opens end with them.
    LOCAL_PROVIDER_DELAY_MS: '20',
    PROVIDER_DEFAULT_RPM: '60000',
    PROVIDER_DEFAULT_CONCURRENCY: '64',
  });
  try {
    await startWorker(ctx);
    const api = await startApi(ctx);
    const { port } = receiver.address() as AddressInfo;
    const values = { cursor: await givenCursor(api), webhookUrl: `http://127.0.0.1:${port}/contract` };
    const user = await schemathesis(api.url, ctx.apiKey, values, RUN_SECONDS.user, ['--exclude-tag=admin']);
    const admin = await schemathesis(api.url, adminKey, values, RUN_SECONDS.admin, ['--include-tag=admin']);
    return Math.max(user, admin);
  } finally {
    await ctx.cleanup();
    receiver.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

import { spawn } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { startSharedStack } from './harness/shared-stack.js';

const QUIET_REPORTER = fileURLToPath(new URL('./harness/quiet-reporter.mjs', import.meta.url));
/** Where each test file's own output (server and process logs) is kept, one file each. */
const TEST_LOG_DIR = fileURLToPath(new URL('./artifacts/logs/', import.meta.url));

/**
 * `npm test`: starts the real servers once, then runs the test files against them with node's test
 * runner. Arguments narrow the run to given files: `npm test -- test/api.test.ts`. Quiet: the test
 * files' own output goes to `test/artifacts/logs/` (all of it with `KILN_TEST_VERBOSE=1`).
 */
async function main(): Promise<number> {
  const testDir = fileURLToPath(new URL('.', import.meta.url));
  const requested = process.argv.slice(2);
  const files =
    requested.length > 0
      ? requested
      : (await readdir(testDir)).filter((name) => name.endsWith('.test.ts')).map((name) => `test/${name}`);
  const startedAt = Date.now();
  const stack = await startSharedStack();
  console.error(`test servers ready in ${Date.now() - startedAt} ms`);
  try {
    await rm(TEST_LOG_DIR, { recursive: true, force: true });
    const reporter = process.env.KILN_TEST_VERBOSE ? 'spec' : QUIET_REPORTER;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, ...files],
      {
        stdio: 'inherit',
        // The AWS SDK warns every process that its releases after January 2027 need Node 22.
        env: {
          ...process.env,
          ...stack.env,
          KILN_TEST_LOG_DIR: TEST_LOG_DIR,
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        },
      },
    );
    return await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  } finally {
    await stack.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

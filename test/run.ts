import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { startSharedStack } from './harness/shared-stack.js';

/**
 * `npm test`: starts the real servers once, then runs the test files against them with node's test
 * runner. Arguments narrow the run to given files: `npm test -- test/api.test.ts`.
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
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
      stdio: 'inherit',
      env: { ...process.env, ...stack.env },
    });
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

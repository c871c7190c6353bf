import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { spec } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';

/** Where each test file's own output (server and process logs) is kept, one file each. */
export const TEST_LOG_DIR = fileURLToPath(new URL('../artifacts/logs/', import.meta.url));

interface TestEvent {
  type: string;
  data: { file?: string; message?: string };
}

/**
 * Node's spec reporter without the test files' own output: what a file prints (logs of the servers
 * and processes it starts) goes to `test/artifacts/logs/<file>.log`, and the run ends by naming the
 * logs of the files that failed. A green run prints only its tests.
 */
function keepOutputAside(): Transform {
  const logs = new Map<string, WriteStream>();
  const failed = new Set<string>();
  mkdirSync(TEST_LOG_DIR, { recursive: true });
  const logOf = (file: string) => {
    const name = path.join(TEST_LOG_DIR, `${path.basename(file)}.log`);
    if (!logs.has(name)) logs.set(name, createWriteStream(name));
    return { name, stream: logs.get(name) as WriteStream };
  };
  return new Transform({
    objectMode: true,
    transform(event: TestEvent, _encoding, callback: TransformCallback) {
      const { file, message } = event.data;
      if (event.type === 'test:stdout' || event.type === 'test:stderr') {
        if (file) logOf(file).stream.write(message ?? '');
        return callback();
      }
      if (event.type === 'test:fail' && file) failed.add(logOf(file).name);
      callback(null, event);
    },
    flush(callback: TransformCallback) {
      for (const stream of logs.values()) stream.end();
      if (failed.size > 0)
        process.stderr.write(`\nlogs of the failing test files:\n  ${[...failed].join('\n  ')}\n`);
      callback();
    },
  });
}

/** Used as `--test-reporter=./test/harness/quiet-reporter.ts`. */
export default async function* quietSpec(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const printed = (source as unknown as NodeJS.ReadableStream).pipe(keepOutputAside()).pipe(new spec());
  for await (const chunk of printed) yield String(chunk);
}

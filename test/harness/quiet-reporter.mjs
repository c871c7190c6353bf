// Plain JavaScript: node's test runner loads reporters before any --import loader applies.
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { Readable, Transform } from 'node:stream';
import { spec } from 'node:test/reporters';

/**
 * Node's spec reporter without the test files' own output: what a file prints (logs of the servers
 * and processes it starts) goes to `$KILN_TEST_LOG_DIR/<file>.log`, and the run ends by naming the
 * logs of the files that failed. A green run prints only its tests.
 */
function keepOutputAside(logDir) {
  const logs = new Map();
  const failed = new Set();
  mkdirSync(logDir, { recursive: true });
  const logOf = (file) => {
    const name = path.join(logDir, `${path.basename(file)}.log`);
    if (!logs.has(name)) logs.set(name, createWriteStream(name));
    return { name, stream: logs.get(name) };
  };
  return new Transform({
    objectMode: true,
    transform(event, _encoding, callback) {
      const { file, message } = event.data ?? {};
      if (event.type === 'test:stdout' || event.type === 'test:stderr') {
        if (file) logOf(file).stream.write(message ?? '');
        return callback();
      }
      if (event.type === 'test:fail' && file) failed.add(logOf(file).name);
      callback(null, event);
    },
    flush(callback) {
      for (const stream of logs.values()) stream.end();
      if (failed.size > 0) {
        process.stderr.write(`\nlogs of the failing test files:\n  ${[...failed].join('\n  ')}\n`);
      }
      callback();
    },
  });
}

export default async function* quietSpec(source) {
  const logDir = process.env.KILN_TEST_LOG_DIR ?? 'test/artifacts/logs';
  const printed = Readable.from(source).pipe(keepOutputAside(logDir)).pipe(new spec());
  for await (const chunk of printed) yield String(chunk);
}

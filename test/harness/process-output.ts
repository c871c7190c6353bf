import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../../src/devstack/child-lifetime.js';
import type { TestContext } from './test-context.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** One pino line as a Kiln process writes it. */
export type LogLine = { level: number; msg: string } & Record<string, unknown>;

/** Everything a child process writes, kept whole: tests search it for what must and must not be there. */
export interface CapturedOutput {
  /** stdout and stderr as written. */
  text(): string;
  /** Every complete stdout line, JSON or not. */
  stdoutLines(): string[];
  /** The stdout lines that are JSON log lines. */
  lines(): LogLine[];
  /** Resolves with the first log line that matches, written already or later; rejects if the process exits first. */
  waitFor(matches: (line: LogLine) => boolean): Promise<LogLine>;
}

function parseLine(line: string): LogLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return undefined;
  }
}

/** Starts capturing at once: call it right after spawning, before anything is written. */
export function captureOutput(child: ChildProcess): CapturedOutput {
  let text = '';
  let pending = '';
  const lines: LogLine[] = [];
  const stdoutLines: string[] = [];
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    pending += chunk.toString();
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete) {
      if (line.trim() !== '') stdoutLines.push(line);
      const parsed = parseLine(line);
      if (parsed) lines.push(parsed);
    }
    for (const wake of waiters) wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  /** Resolves with what `find` finds, now or after later output; rejects if the process exits first. */
  const waitUntil = <T>(find: () => T | undefined) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found === undefined) return;
        waiters.delete(check);
        resolve(found);
      };
      waiters.add(check);
      child.once('exit', (code) => {
        waiters.delete(check);
        reject(new Error(`process exited with ${code} first: ${text.slice(-2000)}`));
      });
      check();
    });
  return {
    text: () => text,
    lines: () => lines,
    stdoutLines: () => stdoutLines,
    waitFor: (matches) => waitUntil(() => lines.find(matches)),
  };
}

export interface KilnProcess {
  child: ChildProcess;
  output: CapturedOutput;
  /** Resolves with the process's HTTP base URL once it serves. */
  url: Promise<string>;
  stop(): Promise<void>;
}

/**
 * `npm run api` or `npm run worker` as a real child process with its output captured; the URL comes
 * from its start line (`api listening` or `worker polling`). Stopped at the context's cleanup.
 */
export function spawnKilnProcess(
  ctx: TestContext,
  role: 'api' | 'worker',
  extraEnv: Record<string, string> = {},
): KilnProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `src/${role}/main.ts`], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...ctx.env, LOG_LEVEL: 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child);
  const started = role === 'api' ? 'api listening' : 'worker polling';
  const url = output
    .waitFor((line) => line.msg === started)
    .then((line) => String(role === 'api' ? line.url : line.httpUrl));
  url.catch(() => undefined);
  const stop = () => stopChild(child);
  ctx.onCleanup(stop);
  return { child, output, url, stop };
}

import type { ChildProcess } from 'node:child_process';

/**
 * Sends `signal` to `child` when this process exits, however it exits through JavaScript
 * (`process.exit`, an uncaught error, the end of the event loop): a server this process started must
 * not outlive it and hold its port and data. The child then stops on its own.
 */
export function endsWithThisProcess(child: ChildProcess, signal: NodeJS.Signals): void {
  const stop = () => child.kill(signal);
  process.once('exit', stop);
  child.once('exit', () => process.removeListener('exit', stop));
}

/**
 * A first Ctrl-C or SIGTERM asks for a clean stop (the worker drains, then the servers stop); a
 * second one exits at once, and `endsWithThisProcess` still stops the servers.
 */
export function exitOnSecondSignal(): void {
  let received = 0;
  const onSignal = () => {
    received += 1;
    if (received >= 2) process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

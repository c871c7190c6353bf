import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout. Callers log job ids and prompt hashes, never prompts or keys. */
export function createLogger(level: string, name: string): Logger {
  return pino({ level, name, base: { pid: process.pid } });
}

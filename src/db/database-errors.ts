import { hasNetworkErrorCode } from '../providers/network-error.js';

/**
 * SQLSTATEs that say the server is going away or cannot take a session now (shutdown, recovery, too
 * many connections), not that the statement was wrong. Class 08 is every connection exception.
 */
const UNAVAILABLE_SQLSTATES: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03', '53300']);

// node-postgres reports a lost or unobtainable connection only in words.
const UNAVAILABLE_MESSAGE =
  /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed/i;

function saysUnavailable(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) return true;
  return UNAVAILABLE_MESSAGE.test(error.message);
}

/**
 * Whether `error`, or one of its first few causes (a migration wraps the driver's error), means
 * PostgreSQL cannot be reached right now: worth a wait and another try.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (hasNetworkErrorCode(error)) return true;
  for (let cause = error, depth = 0; cause instanceof Error && depth < 4; depth++) {
    if (saysUnavailable(cause)) return true;
    cause = cause.cause;
  }
  return false;
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/*
 * What the provider fakes share: a behaviour told to each request in turn, a sleep that gives up when
 * nobody waits for the answer any more, and a close that does not wait for hung requests.
 */

/** The answer for every request, and answers queued ahead of it for the next few. */
export function behaviourSchedule<Behaviour>(initial: Behaviour) {
  const queue: Behaviour[] = [];
  let persistent = initial;
  return {
    /** The next request's behaviour. */
    next: (): Behaviour => queue.shift() ?? persistent,
    set: (behaviour: Behaviour): void => {
      persistent = behaviour;
    },
    queue: (behaviour: Behaviour, times = 1): void => {
      for (let i = 0; i < times; i++) queue.push(behaviour);
    },
  };
}

/** Sleeps, but gives up (false) when the client goes away or the server closes. */
export async function stillWanted(ms: number, res: ServerResponse, closing: AbortSignal): Promise<boolean> {
  if (res.destroyed) return false;
  const gone = new AbortController();
  const leave = () => gone.abort();
  res.once('close', leave);
  try {
    await sleep(ms, undefined, { signal: AbortSignal.any([gone.signal, closing]) });
    return true;
  } catch {
    return false;
  } finally {
    // Called once per streamed token in some fakes: a listener left behind each time would pile up.
    res.off('close', leave);
  }
}

/** Ends what the fake is doing (`closing`), drops open connections, and resolves once it has stopped. */
export async function closeFakeServer(server: Server, closing: AbortController): Promise<void> {
  closing.abort();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

/**
 * Serves `handle` on a free loopback port. A request it fails is answered by `answerFailure` (a 500 in
 * the fake's own error shape), or cut if an answer had begun.
 */
export async function serveFake(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  answerFailure: (res: ServerResponse, error: unknown) => void,
): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) answerFailure(res, error);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

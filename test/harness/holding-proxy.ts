import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An HTTP proxy that can hold chosen requests back, to stall one kind of call to a real server. */
export interface HoldingProxy {
  url: string;
  /** From now on, matching requests (or those `which` picks instead) wait until `release()`. */
  hold(which?: (req: IncomingMessage) => boolean): void;
  release(): void;
  /** Matching requests waiting right now. */
  held(): number;
  close(): Promise<void>;
}

export async function startHoldingProxy(
  target: string,
  matches: (req: IncomingMessage) => boolean,
): Promise<HoldingProxy> {
  const upstream = new URL(target);
  let holding = false;
  let holds = matches;
  let waiting = 0;
  let released: () => void = () => undefined;
  let gate = Promise.resolve();

  const server = createServer((req, res) => {
    const forward = () => {
      // Headers go through untouched: S3 signatures cover the Host the client signed for.
      const outgoing = request({
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      });
      outgoing.on('response', (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      outgoing.on('error', () => res.destroy());
      res.on('close', () => outgoing.destroy());
      req.pipe(outgoing);
    };
    if (!holding || !holds(req)) return forward();
    waiting += 1;
    void gate.then(() => {
      waiting -= 1;
      if (!res.destroyed && !req.destroyed) forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hold(which = matches) {
      holding = true;
      holds = which;
      gate = new Promise((resolve) => (released = resolve));
    },
    release() {
      holding = false;
      released();
    },
    held: () => waiting,
    close: async () => {
      holding = false;
      released();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

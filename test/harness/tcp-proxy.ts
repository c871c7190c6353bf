import { createConnection, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy in front of one server, for faults of the network between a process and it: `freeze()`
 * stops forwarding in both directions (bytes wait, connections stay open, as on a stalled link) until
 * `thaw()`; `cut()` resets every connection; `refuse()` also resets every new one, as a server that is
 * down does, until `accept()`.
 */
export interface TcpProxy {
  /** `host:port` to connect to instead of the server. */
  address: string;
  freeze(): void;
  thaw(): void;
  cut(): void;
  refuse(): void;
  accept(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = target.split(':') as [string, string];
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  let refusing = false;
  const connectPair = ([client, upstream]: [Socket, Socket]) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  // Unpiped as well as paused: a pipe resumes its source whenever the destination drains.
  const holdPair = ([client, upstream]: [Socket, Socket]) => {
    client.unpipe(upstream).pause();
    upstream.unpipe(client).pause();
  };

  const server = createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ host, port: Number(port) });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    if (!frozen) connectPair(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  const cut = () => {
    for (const pair of pairs) for (const socket of pair) socket.resetAndDestroy();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: listening } = server.address() as AddressInfo;

  return {
    address: `127.0.0.1:${listening}`,
    freeze: () => {
      frozen = true;
      for (const pair of pairs) holdPair(pair);
    },
    thaw: () => {
      frozen = false;
      for (const pair of pairs) connectPair(pair);
    },
    cut,
    refuse: () => {
      refusing = true;
      cut();
    },
    accept: () => {
      refusing = false;
    },
    close: async () => {
      for (const pair of pairs) for (const socket of pair) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

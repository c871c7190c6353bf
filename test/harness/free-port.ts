import { createServer } from 'node:net';

/**
 * Asks the OS for a TCP port on 127.0.0.1 that is free right now. Another process could take it before
 * the caller binds it, which is rare enough for tests that start one server at a time.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('listening socket has no TCP address'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

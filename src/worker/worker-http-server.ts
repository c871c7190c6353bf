import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/index.js';
import type { Logger } from '../logger.js';
import { metricsAccess, METRICS_TOKEN_REQUIRED } from '../observability/metrics-access.js';
import { renderMetrics } from '../observability/metrics-text.js';
import type { WorkerHealth } from './worker-health.js';

export interface WorkerHttpServer {
  url: string;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * The worker's own small HTTP server: `/metrics` for Prometheus (behind the metrics token when one is
 * set) and `/healthz` for orchestrators (200 while healthy, 503 otherwise). A worker serves no API, so
 * plain `node:http` is enough.
 */
export async function startWorkerHttpServer(
  { workerHttp: { host, port }, metricsToken }: Pick<Config['observability'], 'workerHttp' | 'metricsToken'>,
  health: () => Promise<WorkerHealth>,
  logger: Logger,
): Promise<WorkerHttpServer> {
  const mayScrape = metricsAccess(metricsToken);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const answer = async () => {
      if (req.method !== 'GET')
        return sendJson(res, 405, { error: { code: 'method_not_allowed', message: 'GET only' } });
      if (path === '/metrics') {
        if (!mayScrape(req.headers.authorization)) {
          res.setHeader('WWW-Authenticate', 'Bearer');
          return sendJson(res, 401, { error: { code: 'unauthorized', message: METRICS_TOKEN_REQUIRED } });
        }
        const { contentType, body } = await renderMetrics();
        res.writeHead(200, { 'Content-Type': contentType }).end(body);
        return;
      }
      if (path === '/healthz') {
        const status = await health();
        if (status.healthy) return sendJson(res, 200, { ok: true });
        return sendJson(res, 503, { error: { code: 'unhealthy', message: status.reason } });
      }
      sendJson(res, 404, { error: { code: 'not_found', message: `no route ${path}` } });
    };
    answer().catch((error: unknown) => {
      logger.error({ err: error, path }, 'worker http request failed');
      if (!res.headersSent) sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

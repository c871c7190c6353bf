import { createServer } from 'node:net';
import { makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import type { Logger } from '../logger.js';
import { addMetricsSource } from './metrics-text.js';
import { temporalLoggerFor } from './temporal-log-adapter.js';

/** A scrape of the runtime's exporter that takes longer than this is left out of that scrape. */
const SCRAPE_TIMEOUT_MS = 2000;

/** A loopback port free right now; the exporter binds it a moment later. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function scrape(url: string, logger: Logger): Promise<string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
    if (response.ok) return await response.text();
    logger.warn({ status: response.status }, 'temporal metrics scrape failed');
  } catch (error) {
    logger.warn({ err: error }, 'temporal metrics scrape failed');
  }
  return '';
}

/**
 * Routes the Temporal runtime's logs (SDK, workflows, Rust core from WARN) into pino, and its metrics
 * into this process's `/metrics`. The SDK's Prometheus exporter can only serve on an address of its
 * own, so it listens on a loopback port nobody scrapes directly: our `/metrics` fetches it and appends
 * its text, keeping one endpoint and one port per process. Must run before any worker or native
 * connection exists, and at most once per process.
 */
export async function installTemporalRuntime(logger: Logger): Promise<void> {
  const port = await freeLoopbackPort();
  Runtime.install({
    logger: temporalLoggerFor(logger.child({ component: 'temporal' })),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }), forward: {} },
      metrics: { prometheus: { bindAddress: `127.0.0.1:${port}`, useSecondsForDurations: true } },
    },
  });
  addMetricsSource(() => scrape(`http://127.0.0.1:${port}/metrics`, logger));
}

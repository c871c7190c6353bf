import { Gauge } from 'prom-client';
import { metricsRegistry } from './metrics.js';

const openSockets = new Gauge({
  name: 'kiln_open_sockets',
  help: 'Event connections this API process holds open, by kind',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

/** Counts one open WebSocket or event stream; the returned function uncounts it, once. */
export function trackOpenSocket(kind: 'websocket' | 'sse'): () => void {
  openSockets.inc({ kind });
  let closed = false;
  return () => {
    if (closed) return;
    closed = true;
    openSockets.dec({ kind });
  };
}

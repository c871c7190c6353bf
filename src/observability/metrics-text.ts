import { metricsRegistry } from './metrics.js';

/** Text in the Prometheus exposition format from outside prom-client (the Temporal runtime's exporter). */
export type MetricsSource = () => Promise<string>;

const sources: MetricsSource[] = [];

/** Appends `source` to every scrape of this process. */
export function addMetricsSource(source: MetricsSource): void {
  sources.push(source);
}

/**
 * Everything this process exports, in one scrape: its own registry, then each added source. Names do
 * not collide: Kiln's are `kiln_*` and Node's `process_*`/`nodejs_*`, the Temporal runtime's `temporal_*`.
 */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  const parts = await Promise.all([metricsRegistry.metrics(), ...sources.map((source) => source())]);
  return {
    contentType: metricsRegistry.contentType,
    body: parts.map((part) => (part.endsWith('\n') ? part : `${part}\n`)).join(''),
  };
}

import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import {
  detectResourcesSync,
  envDetectorSync,
  hostDetectorSync,
  processDetectorSync,
  Resource,
} from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Config } from '../config/index.js';
import { nameServerSpanByRoute, untracedPath } from './http-server-spans.js';

/** The process a trace's spans come from, as its `service.name` says. */
export type TracedService = 'kiln-api' | 'kiln-worker' | 'kiln';

/** What else needs this process's tracing: the Temporal worker hands workflow spans to the processor. */
export interface ActiveTracing {
  /** Where every span of this process ends up, batched to the OTLP endpoint. */
  spanProcessor: SpanProcessor;
  /** The process's resource, for spans made inside the workflow sandbox and handed out by a sink. */
  resource: Resource;
}

/** Ends this process's tracing, sending what is still batched. */
export interface ProcessTracing {
  stop(): Promise<void>;
}

let active: ActiveTracing | undefined;

/** This process's tracing, or undefined when it is off: nothing is traced and no interceptor is added. */
export function activeTracing(): ActiveTracing | undefined {
  return active;
}

/**
 * Our service name, unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` say otherwise (the later
 * resource wins a merge), with the process and host the spans come from.
 */
function processResource(service: TracedService): Resource {
  const detected = detectResourcesSync({
    detectors: [envDetectorSync, processDetectorSync, hostDetectorSync],
  });
  return Resource.default()
    .merge(new Resource({ 'service.name': service }))
    .merge(detected);
}

/** Incoming requests only: an outgoing one would carry our trace ids to webhook receivers and providers. */
function httpServerInstrumentation(): HttpInstrumentation {
  return new HttpInstrumentation({
    disableOutgoingRequestInstrumentation: true,
    ignoreIncomingRequestHook: (request) => untracedPath(request.url),
    applyCustomAttributesOnSpan: nameServerSpanByRoute,
  });
}

/**
 * Starts OpenTelemetry for this process when an OTLP endpoint is configured, and does nothing otherwise.
 * Once per process, before the modules it instruments load: the HTTP instrumentation patches `http`
 * when it is next required, which an Express loaded earlier has already done (the API's entry points
 * import the rest of the process after this). Logs stay pino's, and metrics Prometheus's.
 */
export function startTracing(
  config: Config['observability']['tracing'],
  service: TracedService,
): ProcessTracing {
  if (config.otlpEndpoint === undefined) return { stop: () => Promise.resolve() };
  if (active) throw new Error('tracing is started once per process');
  const exporter = new OTLPTraceExporter({ url: new URL('v1/traces', withSlash(config.otlpEndpoint)).href });
  const spanProcessor = new BatchSpanProcessor(exporter);
  const resource = processResource(service);
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    spanProcessors: [spanProcessor],
    // An empty list, or the SDK would set up an OTLP log exporter nothing writes to.
    logRecordProcessors: [],
    instrumentations: service === 'kiln-worker' ? [] : [httpServerInstrumentation()],
  });
  sdk.start();
  active = { spanProcessor, resource };
  return {
    stop: async () => {
      active = undefined;
      await sdk.shutdown();
    },
  };
}

/** `http://host:4318/base` and `…/base/` both mean the base: the signal path goes under it. */
function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

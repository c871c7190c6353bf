import { createRequire } from 'node:module';
import type { ClientInterceptors } from '@temporalio/client';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
  type OpenTelemetrySinks,
} from '@temporalio/interceptors-opentelemetry';
import type { InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import { activeTracing, type ActiveTracing } from './tracing.js';

/** The package's workflow interceptors, bundled into the sandbox beside ours. */
const WORKFLOW_INTERCEPTORS = createRequire(import.meta.url).resolve(
  '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors',
);

/**
 * A Temporal client's interceptors: with tracing on, a workflow start (or signal) is a span of the
 * caller's trace, and carries it in the workflow's headers. Nothing when tracing is off.
 */
export function tracingClientInterceptors(): ClientInterceptors {
  return activeTracing() ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : {};
}

/** What a worker adds for tracing; spread into its options. */
export interface TracedWorkerOptions {
  interceptors: WorkerInterceptors;
  sinks?: InjectedSinks<OpenTelemetrySinks>;
}

/**
 * `interceptors` with tracing added when it is on. Every activity runs in a span under the one that
 * scheduled it (from the headers), and the activity's own client passes its span on to the workflows it
 * starts or signals. A worker that runs workflows also traces them: the workflow run and each activity
 * it schedules, local ones included, are spans made in the sandbox and handed to this process's span
 * processor through a sink. The workflow interceptors only add headers and spans: the commands, and so
 * replay, are the same with tracing on or off. `tracing`: this process's, unless a replay brings its own.
 */
export function tracedWorkerOptions(
  interceptors: WorkerInterceptors,
  { runsWorkflows, tracing = activeTracing() }: { runsWorkflows: boolean; tracing?: ActiveTracing },
): TracedWorkerOptions {
  if (!tracing) return { interceptors };
  const traced: TracedWorkerOptions = {
    interceptors: {
      ...interceptors,
      client: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] },
      activity: [
        ...(interceptors.activity ?? []),
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
    },
  };
  if (!runsWorkflows) return traced;
  traced.interceptors.workflowModules = [...(interceptors.workflowModules ?? []), WORKFLOW_INTERCEPTORS];
  traced.sinks = { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) };
  return traced;
}

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { Histogram, Summary, type Registry } from 'prom-client';
import { createLogger } from '../src/logger.js';
import { metricsRegistry } from '../src/observability/metrics.js';
import { startObservability } from '../src/observability/process-observability.js';
import { promqlReferences, type Aggregation, type SeriesReference } from './harness/promql-references.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/*
 * The dashboard is checked against what Kiln really registers: every module of src/observability is
 * loaded and the processes' own startObservability runs (Node's metrics, the fleet gauges), then the
 * registry's metrics give the names and labels a query may use. Temporal's `temporal_*` metrics come
 * from the SDK's own exporter and have no registry to read, so the dashboard leaves them out.
 */

const DASHBOARD_FILE = fileURLToPath(new URL('../deploy/grafana/kiln-dashboard.json', import.meta.url));
const OBSERVABILITY_DIR = fileURLToPath(new URL('../src/observability/', import.meta.url));
/** The Prometheus data source the importer picks, through the dashboard's own variable. */
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
/** Labels Prometheus adds to every scraped series, whatever the process exported. */
const TARGET_LABELS = ['job', 'instance'];
const PANEL_TYPES = new Set(['row', 'stat', 'timeseries', 'state-timeline']);
const GRID_COLUMNS = 24;
/** What operators asked to see at a glance, each as the metric a stat panel must show. */
const AT_A_GLANCE = {
  'queue depth': 'kiln_jobs_unfinished',
  'failure rate': 'kiln_job_failure_rate',
  'breaker state': 'kiln_provider_circuit_state',
};
const QUANTILES = ['0.5', '0.9', '0.99'];

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: unknown;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: unknown;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  datasource?: unknown;
}
interface Dashboard {
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

/** A series a scrape can hold: the metric it belongs to and the labels it carries. */
type ExportedSeries = Map<string, { metric: string; labels: ReadonlySet<string> }>;

function exportedSeries(registry: Registry): ExportedSeries {
  const series: ExportedSeries = new Map();
  for (const metric of registry.getMetricsAsArray()) {
    // prom-client keeps a metric's label names on the instance; its type declarations leave them out.
    const own = [...(metric as unknown as { labelNames: string[] }).labelNames, ...TARGET_LABELS];
    const add = (suffix: string, extra: string[] = []) =>
      series.set(`${metric.name}${suffix}`, { metric: metric.name, labels: new Set([...own, ...extra]) });
    if (metric instanceof Histogram) add('_bucket', ['le']);
    else if (metric instanceof Summary) add('', ['quantile']);
    else add('');
    if (metric instanceof Histogram || metric instanceof Summary) {
      add('_sum');
      add('_count');
    }
  }
  return series;
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

/** Whether `label` is still on the result after every aggregation in `aggregations`. */
function survives(label: string, aggregations: Aggregation[]): boolean {
  return aggregations.every(({ grouping, labels }) => labels.includes(label) === (grouping === 'by'));
}

/**
 * What is wrong with one query: unknown series, labels a series does not carry, result labels (a legend's,
 * a variable's) that are not on every series or that an aggregation drops, unparseable text.
 */
function queryProblems(where: string, expr: string, exported: ExportedSeries, resultLabels: string[] = []) {
  let series: SeriesReference[], matchingLabels: string[];
  try {
    ({ series, matchingLabels } = promqlReferences(expr));
  } catch (error) {
    return [`${where}: ${(error as Error).message}`];
  }
  if (series.length === 0) return [`${where}: selects no series`];
  return series.flatMap(({ name, matchers, aggregations }) => {
    const known = exported.get(name);
    if (!known) return [`${where}: no metric ${name}`];
    const grouped = aggregations.flatMap((aggregation) => aggregation.labels);
    const used = [...matchers, ...grouped, ...matchingLabels, ...resultLabels];
    return [
      ...used.filter((label) => !known.labels.has(label)).map((label) => `${where}: ${name} has no ${label}`),
      ...resultLabels
        .filter((label) => !survives(label, aggregations))
        .map((label) => `${where}: ${label} is aggregated away`),
    ];
  });
}

function panelProblems(panel: Panel, exported: ExportedSeries): string[] {
  const where = `panel ${panel.id} "${panel.title}"`;
  if (!PANEL_TYPES.has(panel.type)) return [`${where}: type ${panel.type}`];
  const { x, w } = panel.gridPos;
  const problems = x + w > GRID_COLUMNS ? [`${where}: wider than the grid`] : [];
  if (panel.type === 'row') return problems;
  if (!panel.targets?.length) problems.push(`${where}: no queries`);
  const owners = [panel, ...(panel.targets ?? [])];
  if (owners.some((owner) => !isDeepStrictEqual(owner.datasource, DATASOURCE))) {
    problems.push(`${where}: datasource not $datasource`);
  }
  for (const target of panel.targets ?? []) {
    const legendLabels = [...(target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
    problems.push(...queryProblems(`${where} ${target.refId}`, target.expr, exported, legendLabels));
  }
  return problems;
}

/** Grafana's `label_values(selector, label)`: the selector is PromQL, the label must be on it. */
function variableProblems(variable: Variable, exported: ExportedSeries): string[] {
  const where = `variable ${variable.name}`;
  if (variable.type === 'datasource') {
    return variable.query === 'prometheus' ? [] : [`${where}: not prometheus`];
  }
  const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
  const labelValues = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
  if (!labelValues) return [`${where}: not label_values(selector, label): ${query}`];
  const datasource = isDeepStrictEqual(variable.datasource, DATASOURCE) ? [] : [`${where}: datasource`];
  return [...datasource, ...queryProblems(where, labelValues[1]!, exported, [labelValues[2]!])];
}

function overlaps(a: Panel['gridPos'], b: Panel['gridPos']): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function layoutProblems(panels: Panel[]): string[] {
  const ids = panels.map((panel) => panel.id);
  const problems = ids.filter((id, index) => ids.indexOf(id) !== index).map((id) => `panel id ${id} twice`);
  panels.forEach((a, index) => {
    for (const b of panels.slice(index + 1)) {
      if (overlaps(a.gridPos, b.gridPos)) problems.push(`panels ${a.id} and ${b.id} overlap`);
    }
  });
  return problems;
}

function dashboardProblems(dashboard: Dashboard, exported: ExportedSeries): string[] {
  const panels = allPanels(dashboard.panels);
  const variables = dashboard.templating.list;
  return [
    ...(variables.some((v) => v.name === 'datasource' && v.type === 'datasource') ? [] : ['no $datasource']),
    ...variables.flatMap((variable) => variableProblems(variable, exported)),
    ...panels.flatMap((panel) => panelProblems(panel, exported)),
    ...layoutProblems(panels),
  ];
}

/** Each series a panel's queries select, with the query it is in. */
function panelSeries(panel: Panel): { expr: string; series: SeriesReference }[] {
  return (panel.targets ?? []).flatMap(({ expr }) =>
    promqlReferences(expr).series.map((series) => ({ expr, series })),
  );
}

let ctx: TestContext;
let exported: ExportedSeries;
let text: string;
let dashboard: Dashboard;

before(async () => {
  ctx = await createTestContext();
  for (const file of await readdir(OBSERVABILITY_DIR)) await import(`${OBSERVABILITY_DIR}${file}`);
  const observability = startObservability(ctx.config, ctx.database.db, createLogger('silent', 'test'));
  await observability.stop();
  exported = exportedSeries(metricsRegistry);
  text = await readFile(DASHBOARD_FILE, 'utf8');
  dashboard = JSON.parse(text) as Dashboard;
});
after(() => ctx.cleanup());

describe('the Grafana dashboard', () => {
  test('queries only metrics and labels Kiln exports, from the $datasource, on a grid with unique ids', () => {
    assert.ok(dashboard.schemaVersion >= 39 && dashboard.uid, 'a current dashboard with a stable uid');
    assert.deepEqual(dashboardProblems(dashboard, exported), []);
  });

  test('the check finds a misspelt metric, label, function or data source', () => {
    const mistakes = [
      { from: 'kiln_jobs_unfinished{', to: 'kiln_jobs_unfinishd{', problem: 'no metric kiln_jobs_unfinishd' },
      { from: 'sum by (code)', to: 'sum by (cause)', problem: 'kiln_jobs_failed_total has no cause' },
      { from: '(kiln_open_sockets)', to: '(kiln_open_sockets{model="x"})', problem: 'has no model' },
      { from: '{{code}}', to: '{{reason}}', problem: 'kiln_jobs_failed_total has no reason' },
      { from: '{{code}}', to: '{{model}}', problem: 'model is aggregated away' },
      { from: 'histogram_quantile(', to: 'histogram_quantil(', problem: 'histogram_quantil is not a PromQL' },
      { from: 'max(kiln_job_failure_rate_high)', to: 'max(kiln_job_failure_rate_high', problem: 'unclosed' },
      { from: 'total, provider)', to: 'total, provder)', problem: 'has no provder' },
      { from: '${datasource}', to: 'prometheus', problem: 'datasource not $datasource' },
    ];
    for (const { from, to, problem } of mistakes) {
      const broken = JSON.parse(text, (_key, value: unknown) =>
        typeof value === 'string' ? value.replace(from, to) : value,
      ) as Dashboard;
      assert.notDeepEqual(broken, dashboard, `the dashboard has ${from}`);
      const problems = dashboardProblems(broken, exported);
      assert.ok(
        problems.some((found) => found.includes(problem)),
        `${to}: ${problems.join('; ')}`,
      );
    }
  });

  test('shows queue depth, failure rate and breaker state at a glance', () => {
    const stats = allPanels(dashboard.panels).filter((panel) => panel.type === 'stat');
    for (const [topic, metric] of Object.entries(AT_A_GLANCE)) {
      const shown = stats.some((panel) => panelSeries(panel).some(({ series }) => series.name === metric));
      assert.ok(shown, `a stat panel for ${topic} (${metric})`);
    }
  });

  test('shows p50, p90 and p99 per model for provider calls and whole jobs', () => {
    for (const histogram of ['kiln_provider_call_duration_seconds', 'kiln_job_duration_seconds']) {
      const perModel = allPanels(dashboard.panels).some((panel) => {
        const quantiles = panelSeries(panel)
          .filter(({ series }) => series.name === `${histogram}_bucket`)
          .filter(({ series }) => ['le', 'model'].every((label) => survives(label, series.aggregations)))
          .map(({ expr }) => /^histogram_quantile\(([\d.]+),/.exec(expr)?.[1]);
        return QUANTILES.every((quantile) => quantiles.includes(quantile));
      });
      assert.ok(perModel, `one panel with ${QUANTILES.join(', ')} of ${histogram} by model`);
    }
  });

  test('shows every kiln_* metric Kiln registers', () => {
    const shown = new Set(
      allPanels(dashboard.panels).flatMap((panel) =>
        panelSeries(panel).map(({ series }) => exported.get(series.name)?.metric),
      ),
    );
    const kilnMetrics = metricsRegistry.getMetricsAsArray().map((metric) => metric.name);
    assert.deepEqual(
      kilnMetrics.filter((name) => name.startsWith('kiln_') && !shown.has(name)),
      [],
    );
  });
});

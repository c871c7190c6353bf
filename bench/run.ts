import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { failed, judge, machine, writeReport, type BenchReport, type ScenarioResult } from './lib/report.js';
import { formatFigures, type Scenario } from './lib/scenario.js';
import { startBenchStack, type TemporalStore } from './lib/stack.js';
import { RUN_ORDER, SCENARIOS } from './scenarios/index.js';

const RESULTS_DIR = fileURLToPath(new URL('./results', import.meta.url));

const USAGE = `npm run bench [-- [scenario…] [--quick] [--runs N] [--temporal memory|file]]
  scenarios: ${SCENARIOS.map((s) => s.name).join(', ')} (default: all)
  ${SCENARIOS.filter((s) => s.ratioRows)
    .map((s) => s.name)
    .join(', ')}: Kiln beside the baselines bare and direct, in turn each round (bench/baselines)
  --quick     smaller loads, one run: for development; writes bench/results/quick/latest.{json,md}
  --runs N    runs per scenario, rounds of the three designs (default 3, quick 1)
  --temporal  the dev server's SQLite: memory (as npm test, default) or file (WAL, synchronous=OFF)`;

function log(line: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
}

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      temporal: { type: 'string', default: 'memory' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const unknown = positionals.filter((name) => !SCENARIOS.some((s) => s.name === name));
  if (unknown.length > 0 || !['memory', 'file'].includes(values.temporal)) {
    console.error(`unknown scenario or option: ${unknown.join(' ') || values.temporal}\n${USAGE}`);
    process.exit(2);
  }
  const scenarios = RUN_ORDER.map((name) => SCENARIOS.find((s) => s.name === name)!).filter(
    (s) => positionals.length === 0 || positionals.includes(s.name),
  );
  const runs = values.runs ? Number(values.runs) : values.quick ? 1 : 3;
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--runs must be a whole number ≥ 1\n${USAGE}`);
    process.exit(2);
  }
  return { scenarios, quick: values.quick, runs, temporal: values.temporal as TemporalStore };
}

/** Full-mode results replace their scenarios in latest.json; the rest of the table stays as it was. */
async function mergedWithPrevious(report: BenchReport): Promise<BenchReport> {
  let previous: BenchReport;
  try {
    previous = JSON.parse(await readFile(path.join(RESULTS_DIR, 'latest.json'), 'utf8')) as BenchReport;
  } catch {
    return report;
  }
  const byName = new Map<string, ScenarioResult>(previous.scenarios.map((s) => [s.name, s]));
  for (const result of report.scenarios) byName.set(result.name, result);
  return {
    ...report,
    scenarios: SCENARIOS.flatMap((s) => {
      const result = byName.get(s.name);
      return result ? [result] : [];
    }),
  };
}

async function runScenario(scenario: Scenario, quick: boolean, runs: number): Promise<ScenarioResult> {
  const startedAt = Date.now();
  log(`${scenario.name}: ${scenario.conditions(quick)}`);
  try {
    const figures = await scenario.run({ quick, runs, log });
    const result = judge(scenario, quick, figures, (Date.now() - startedAt) / 1000);
    for (const target of result.targets) {
      log(`  ${target.figure} ${target.label}: median ${target.median} → ${target.met ? 'met' : 'MISSED'}`);
    }
    return result;
  } catch (error) {
    log(
      `  ${scenario.name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    return failed(scenario, quick, error, (Date.now() - startedAt) / 1000);
  }
}

async function main(): Promise<void> {
  const { scenarios, quick, runs, temporal } = parse();
  const report: BenchReport = {
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, ''),
    startedAt: new Date().toISOString(),
    quick,
    runs,
    temporalStore: temporal,
    machine: machine(),
    loadAverageAtEnd: [],
    scenarios: [],
  };
  const stack = await startBenchStack(temporal, log);
  const stop = async () => {
    await stack.stop();
    process.exit(130);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  try {
    for (const scenario of scenarios) {
      const result = await runScenario(scenario, quick, runs);
      report.scenarios.push(result);
      log(`${scenario.name} done in ${Math.round(result.seconds)} s`);
      for (const [name, spread] of Object.entries(result.figures)) {
        log(`  ${name}: ${formatFigures({ median: spread.median, min: spread.min, max: spread.max })}`);
      }
    }
  } finally {
    report.loadAverageAtEnd = os.loadavg();
    await stack.stop();
  }
  // Report order is the table order, whatever order the scenarios ran in.
  report.scenarios.sort(
    (a, b) => SCENARIOS.findIndex((s) => s.name === a.name) - SCENARIOS.findIndex((s) => s.name === b.name),
  );
  const dir = quick ? path.join(RESULTS_DIR, 'quick') : RESULTS_DIR;
  const files = await writeReport(quick ? report : await mergedWithPrevious(report), dir);
  log(`wrote ${files.join(', ')}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { format as prettier, resolveConfig } from 'prettier';
import type { Figures, RatioRow, Scenario, Target } from './scenario.js';
import { spreadOf, type Spread } from './stats.js';

type JudgedTarget = Target & { median: number; min: number; max: number; met: boolean };

/** One scenario's outcome: every figure over the runs, and each target judged on its figure's median. */
export interface ScenarioResult {
  name: string;
  title: string;
  conditions: string;
  figures: Record<string, Spread>;
  targets: JudgedTarget[];
  /** The ratio table's rows, for a scenario that measures Kiln beside the baselines. */
  ratioRows?: RatioRow[];
  /** Set when the scenario failed to finish: its figures are missing. */
  error?: string;
  seconds: number;
}

export interface BenchReport {
  command: string;
  startedAt: string;
  quick: boolean;
  runs: number;
  temporalStore: string;
  machine: { cpus: number; cpuModel: string; memoryGb: number; node: string; loadAverageAtStart: number[] };
  /** os.loadavg() once the last scenario ended: with the one at start, how shared the machine was. */
  loadAverageAtEnd: number[];
  scenarios: ScenarioResult[];
}

export function judge(scenario: Scenario, quick: boolean, runs: Figures[], seconds: number): ScenarioResult {
  const names = [...new Set(runs.flatMap((figures) => Object.keys(figures)))];
  const figures = Object.fromEntries(
    names.map((name) => [name, spreadOf(runs.map((figures) => figures[name] ?? Number.NaN))]),
  );
  return {
    name: scenario.name,
    title: scenario.title,
    conditions: scenario.conditions(quick),
    figures,
    seconds,
    ...(scenario.ratioRows ? { ratioRows: scenario.ratioRows } : {}),
    targets: scenario.targets.map((target) => {
      const spread = figures[target.figure] ?? spreadOf([]);
      const met = target.op === '<=' ? spread.median <= target.value : spread.median >= target.value;
      return { ...target, median: spread.median, min: spread.min, max: spread.max, met };
    }),
  };
}

export function failed(scenario: Scenario, quick: boolean, error: unknown, seconds: number): ScenarioResult {
  return {
    name: scenario.name,
    title: scenario.title,
    conditions: scenario.conditions(quick),
    figures: {},
    ...(scenario.ratioRows ? { ratioRows: scenario.ratioRows } : {}),
    targets: scenario.targets.map((target) => ({
      ...target,
      median: Number.NaN,
      min: Number.NaN,
      max: Number.NaN,
      met: false,
    })),
    error: error instanceof Error ? error.message : String(error),
    seconds,
  };
}

function format(value: number): string {
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  return abs >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(abs >= 10 ? 1 : 2);
}

const spread = (s: { median: number; min: number; max: number }) =>
  `**${format(s.median)}** (${format(s.min)}–${format(s.max)})`;

const loads = (averages: number[]) => averages.map((n) => n.toFixed(2)).join(' ');

function verdict(result: ScenarioResult, targets: JudgedTarget[]): string {
  if (targets.length === 0) return '';
  if (result.error) return 'error';
  return targets.every((target) => target.met) ? 'met' : 'missed';
}

/** One row per figure measured beside the baselines: each design's spread, Kiln ÷ `bare`, its targets. */
function ratioTable(report: BenchReport): string[] {
  const lines = [
    '| figure | Kiln | bare | direct | Kiln ÷ bare | target | |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const result of report.scenarios) {
    for (const row of result.ratioRows ?? []) {
      const cell = (name: string) => {
        const figure = result.figures[name];
        return figure && Number.isFinite(figure.median) ? spread(figure) : '–';
      };
      const targets = result.targets.filter(
        (t) => t.figure === `ratio.${row.figure}` || t.figure === `kiln.${row.figure}`,
      );
      lines.push(
        `| ${row.label} | ${cell(`kiln.${row.figure}`)} | ${cell(`bare.${row.figure}`)} | ` +
          `${cell(`direct.${row.figure}`)} | ${cell(`ratio.${row.figure}`)} | ` +
          `${targets.map((t) => t.label).join('; ')} | ${verdict(result, targets)} |`,
      );
    }
  }
  return lines;
}

/** One row per target of the scenarios judged on their own (no baselines). */
function absoluteTable(report: BenchReport): string[] {
  const lines = ['| scenario | figure | target | measured | |', '| --- | --- | --- | --- | --- |'];
  for (const result of report.scenarios.filter((r) => !r.ratioRows)) {
    for (const target of result.targets) {
      lines.push(
        `| ${result.title} | \`${target.figure}\` | ${target.label} | ${spread(target)} | ${verdict(result, [target])} |`,
      );
    }
  }
  return lines;
}

function everyFigure(report: BenchReport): string[] {
  const lines = ['## Every figure', ''];
  for (const result of report.scenarios) {
    lines.push(`### ${result.title} (\`${result.name}\`, ${Math.round(result.seconds)} s)`, '');
    lines.push(result.conditions, '');
    if (result.error) lines.push(`**Did not finish:** ${result.error}`, '');
    const figures = Object.entries(result.figures);
    if (figures.length === 0) continue;
    lines.push('| figure | median (min–max) | runs |', '| --- | --- | --- |');
    for (const [name, s] of figures) {
      lines.push(`| \`${name}\` | ${spread(s)} | ${s.runs.map(format).join(', ')} |`);
    }
    lines.push('');
  }
  return lines;
}

/** The tables the README carries (ratios to the baselines, then absolute targets), then every figure. */
export function markdown(report: BenchReport): string {
  const hasRatios = report.scenarios.some((r) => r.ratioRows);
  const hasAbsolute = report.scenarios.some((r) => !r.ratioRows);
  return [
    `# Kiln benchmark — ${report.startedAt}`,
    '',
    `\`${report.command}\` · ${report.quick ? 'quick mode (indicative only)' : 'full mode'} · ` +
      `${report.runs} run(s) per scenario · Temporal dev server on ${report.temporalStore} SQLite · ` +
      `${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGb} GB, Node ${report.machine.node} · ` +
      `load average at start ${loads(report.machine.loadAverageAtStart)}, at end ${loads(report.loadAverageAtEnd)}`,
    '',
    'Medians over the runs, with (min–max). A target is judged on the median. A ratio is Kiln ÷ `bare` ' +
      'of the same round; its median and spread are over the rounds.',
    '',
    ...(hasRatios ? ['## Kiln beside the baselines', '', ...ratioTable(report), ''] : []),
    ...(hasAbsolute ? ['## Absolute targets', '', ...absoluteTable(report), ''] : []),
    ...everyFigure(report),
  ].join('\n');
}

export async function writeReport(report: BenchReport, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'latest.json');
  const md = path.join(dir, 'latest.md');
  // Written as `npm run format` would leave them, so a format check over the repository stays clean.
  const options = (await resolveConfig(md)) ?? {};
  await writeFile(json, await prettier(JSON.stringify(report), { ...options, parser: 'json' }));
  await writeFile(md, await prettier(markdown(report), { ...options, parser: 'markdown' }));
  return [json, md];
}

export function machine(): BenchReport['machine'] {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadAverageAtStart: os.loadavg(),
  };
}

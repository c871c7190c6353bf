import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { format as prettier, resolveConfig } from 'prettier';
import type { Figures, Scenario, Target } from './scenario.js';
import { spreadOf, type Spread } from './stats.js';

/** One scenario's outcome: every figure over the runs, and each target judged on its figure's median. */
export interface ScenarioResult {
  name: string;
  title: string;
  conditions: string;
  figures: Record<string, Spread>;
  targets: (Target & { median: number; min: number; max: number; met: boolean })[];
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

/** The table the README carries: one row per target, then every figure measured. */
export function markdown(report: BenchReport): string {
  const lines = [
    `# Kiln benchmark — ${report.startedAt}`,
    '',
    `\`${report.command}\` · ${report.quick ? 'quick mode (indicative only)' : 'full mode'} · ` +
      `${report.runs} run(s) per scenario · Temporal dev server on ${report.temporalStore} SQLite · ` +
      `${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGb} GB, Node ${report.machine.node}, ` +
      `load average at start ${report.machine.loadAverageAtStart.map((n) => n.toFixed(2)).join(' ')}`,
    '',
    'Medians over the runs, with (min–max). A target is judged on the median.',
    '',
    '| scenario | figure | target | measured | |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const result of report.scenarios) {
    for (const target of result.targets) {
      const verdict = result.error ? 'error' : target.met ? 'met' : 'missed';
      lines.push(
        `| ${result.title} | \`${target.figure}\` | ${target.label} | ${spread(target)} | ${verdict} |`,
      );
    }
  }
  lines.push('', '## Every figure', '');
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
  return lines.join('\n');
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

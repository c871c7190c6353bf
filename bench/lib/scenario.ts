/** A run's measured figures by name: `submit_c200_p99_ms`, `jobs_per_s`, … */
export type Figures = Record<string, number>;

/** What a figure must reach; judged on the median over the runs. */
export interface Target {
  figure: string;
  /** How the target reads in the table: `p99 ≤ 25 ms at 200 clients`. */
  label: string;
  op: '<=' | '>=';
  value: number;
}

export interface RunSettings {
  /** Smaller loads and fewer runs, for development: the figures are indicative only. */
  quick: boolean;
  runs: number;
  log(line: string): void;
}

export interface Scenario {
  name: string;
  /** The wording of what is measured. */
  title: string;
  /** Load and setup of one run, as the report states it. */
  conditions(quick: boolean): string;
  targets: Target[];
  /** Sets up, measures `settings.runs` times, cleans up; one Figures per run. */
  run(settings: RunSettings): Promise<Figures[]>;
}

/** Runs `once` `runs` times in sequence, logging each run's figures. */
export async function repeat(
  settings: RunSettings,
  once: (run: number) => Promise<Figures>,
): Promise<Figures[]> {
  const all: Figures[] = [];
  for (let run = 1; run <= settings.runs; run++) {
    const figures = await once(run);
    settings.log(`  run ${run}/${settings.runs}: ${formatFigures(figures)}`);
    all.push(figures);
  }
  return all;
}

export function formatFigures(figures: Figures): string {
  return Object.entries(figures)
    .map(([name, value]) => `${name}=${Number.isInteger(value) ? value : value.toFixed(1)}`)
    .join(' ');
}

import { DESIGNS, type DesignName } from './contenders.js';

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

/** A row of the ratio table: one figure as Kiln, `bare` and `direct` showed it, and Kiln ÷ `bare`. */
export interface RatioRow {
  label: string;
  /** Measured as `<design>.<figure>`, its ratio as `ratio.<figure>`. */
  figure: string;
}

export interface Scenario {
  name: string;
  /** The wording of what is measured. */
  title: string;
  /** Load and setup of one run, as the report states it. */
  conditions(quick: boolean): string;
  targets: Target[];
  /** Set for scenarios that measure Kiln beside the baselines (`interleave`): the ratio table's rows. */
  ratioRows?: RatioRow[];
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

/** Kiln ÷ `bare` of every figure both measured, as `ratio.<figure>`; none where `bare`'s is 0. */
function ratios(round: Record<DesignName, Figures>): Figures {
  return Object.fromEntries(
    Object.entries(round.kiln)
      .filter(([name]) => Number.isFinite(round.bare[name]) && round.bare[name] !== 0)
      .map(([name, value]) => [`ratio.${name}`, value / round.bare[name]!]),
  );
}

/**
 * `settings.runs` rounds, each measuring every design once with `once`, the designs' order turning
 * from round to round so that none always runs first on a machine whose load drifts. A round's
 * figures are `<design>.<figure>`, with `ratio.<figure>` = Kiln ÷ `bare` of that round.
 */
export async function interleave(
  settings: RunSettings,
  once: (design: DesignName, round: number) => Promise<Figures>,
): Promise<Figures[]> {
  const all: Figures[] = [];
  for (let round = 1; round <= settings.runs; round++) {
    const measured = {} as Record<DesignName, Figures>;
    for (let turn = 0; turn < DESIGNS.length; turn++) {
      const design = DESIGNS[(round - 1 + turn) % DESIGNS.length]!;
      measured[design] = await once(design, round);
      settings.log(`  round ${round}/${settings.runs} ${design}: ${formatFigures(measured[design])}`);
    }
    const flat = Object.fromEntries(
      DESIGNS.flatMap((design) =>
        Object.entries(measured[design]).map(([name, value]) => [`${design}.${name}`, value]),
      ),
    );
    all.push({ ...flat, ...ratios(measured) });
  }
  return all;
}

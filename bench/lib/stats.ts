/** Nearest-rank percentile of `values` (0 < p ≤ 100); NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** A figure over the runs of a scenario: its median, with the spread the runs showed. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function spreadOf(runs: readonly number[]): Spread {
  const finite = runs.filter((value) => Number.isFinite(value));
  return {
    median: median(finite),
    min: finite.length > 0 ? Math.min(...finite) : Number.NaN,
    max: finite.length > 0 ? Math.max(...finite) : Number.NaN,
    runs: [...runs],
  };
}

/** The given percentiles (by default p50, p90, p99) and max of one run's samples, under `prefix`. */
export function latencyFigures(
  prefix: string,
  samples: readonly number[],
  percentiles: readonly number[] = [50, 90, 99],
): Record<string, number> {
  return {
    ...Object.fromEntries(percentiles.map((p) => [`${prefix}_p${p}_ms`, percentile(samples, p)])),
    [`${prefix}_max_ms`]: samples.length > 0 ? Math.max(...samples) : Number.NaN,
  };
}

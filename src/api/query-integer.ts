import { z } from 'zod';

/**
 * An integer query parameter, in decimal digits, `fallback` when absent. `z.coerce.number()` would also
 * take '', ' ', '0x1f' and '1e3' (as 0, 0, 31 and 1000), which the document's `type: integer` refuses;
 * anything but digits is left for the integer check to refuse.
 */
export function queryInteger(min: number, max: number, fallback: number) {
  const digits = (value: unknown) =>
    typeof value === 'string' && /^-?[0-9]+$/.test(value) ? Number(value) : value;
  // A prefault is parsed as if it were sent, and so is the input's `default` in the JSON Schema; zod
  // leaves a plain default of a transform out of it.
  return z.preprocess(digits, z.int().min(min).max(max)).prefault(fallback);
}

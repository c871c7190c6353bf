/**
 * The `default` of a switch over a closed set: it compiles only when every member has its case, so a
 * member added to the set fails to compile where it is not handled. Throws if a value from outside the
 * types (an unchecked cast, a newer peer) gets there anyway.
 */
export function assertExhaustive(value: never, what = 'value'): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(value)}`);
}

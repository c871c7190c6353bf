import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** A provider's shared breaker, as its row says; a provider that never failed has no row. */
export interface CircuitState {
  state: 'closed' | 'open' | 'half_open';
  consecutiveFailures: number;
  openUntil: Date | null;
  probeStartedAt: Date | null;
}

/** What one limit key uses right now: live call slots, and the pause a 429 set, if still in force. */
export interface LimitUsage {
  slotsInUse: number;
  pausedUntil: Date | null;
}

export async function findCircuits(db: Kysely<Database>): Promise<Map<string, CircuitState>> {
  const rows = await db.selectFrom('provider_circuits').selectAll().execute();
  return new Map(
    rows.map((row) => [
      row.provider,
      {
        state: row.state,
        consecutiveFailures: row.consecutive_failures,
        openUntil: row.open_until,
        probeStartedAt: row.probe_started_at,
      },
    ]),
  );
}

/** Usage by limit key; lapsed slot leases (a dead worker's) and past pauses are not counted. */
export async function findLimitUsage(db: Kysely<Database>): Promise<Map<string, LimitUsage>> {
  const [slots, pauses] = await Promise.all([
    db
      .selectFrom('provider_slots')
      .select(['limit_key', (eb) => eb.fn.countAll<string>().as('in_use')])
      .where('expires_at', '>', sql<Date>`now()`)
      .groupBy('limit_key')
      .execute(),
    db
      .selectFrom('provider_pauses')
      .selectAll()
      .where('paused_until', '>', sql<Date>`now()`)
      .execute(),
  ]);
  const usage = new Map<string, LimitUsage>();
  const entry = (key: string) => usage.get(key) ?? { slotsInUse: 0, pausedUntil: null };
  for (const slot of slots)
    usage.set(slot.limit_key, { ...entry(slot.limit_key), slotsInUse: Number(slot.in_use) });
  for (const pause of pauses)
    usage.set(pause.limit_key, { ...entry(pause.limit_key), pausedUntil: pause.paused_until });
  return usage;
}

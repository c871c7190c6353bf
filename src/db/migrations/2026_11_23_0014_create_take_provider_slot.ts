import { sql, type Kysely } from 'kysely';

/**
 * `take_provider_slot`: the whole slot-and-pacing check of `takeProviderSlot` in one statement. As
 * seven statements in a transaction it held the key's advisory lock across nine round trips, which
 * was a quarter of a worker's database round trips per job and capped the takes of one key per second.
 *
 * Returns null when the slot was taken, otherwise how many ms to wait before asking again. A GCRA
 * paces the calls: one timestamp per key, `next_call_at`; a call may start once it has come, and sets
 * it one interval after the later of its old value and this call's start less the lateness kept, so
 * a waiter that wakes a few ms after its turn does not push the key's schedule back.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function take_provider_slot(
      p_limit_key text,
      p_job_id text,
      p_capacity integer,
      p_interval_ms double precision,
      p_lateness_ms double precision,
      p_lease_ms double precision,
      p_recheck_ms double precision
    ) returns double precision
    language plpgsql as $$
    declare
      v_now timestamptz;
      v_until timestamptz;
      v_held integer;
    begin
      -- Serialises the takers of one key across every worker: the checks and writes cannot interleave.
      perform pg_advisory_xact_lock(hashtext('provider_slots:' || p_limit_key));
      -- Read after the lock was granted: now() is the transaction's start, before the wait for it.
      v_now := clock_timestamp();

      select paused_until into v_until from provider_pauses
        where limit_key = p_limit_key and paused_until > v_now;
      if found then
        return greatest(1, ceil(extract(epoch from v_until - v_now) * 1000));
      end if;

      -- Lapsed leases are dead workers' slots.
      delete from provider_slots where limit_key = p_limit_key and expires_at <= v_now;
      select count(*) into v_held from provider_slots
        where limit_key = p_limit_key and job_id <> p_job_id;
      if v_held >= p_capacity then
        return p_recheck_ms;
      end if;

      -- Paced last, so that only a call that really starts moves the key's next call time on.
      select next_call_at into v_until from provider_pacing where limit_key = p_limit_key;
      if v_until > v_now then
        return greatest(1, ceil(extract(epoch from v_until - v_now) * 1000));
      end if;
      insert into provider_pacing (limit_key, next_call_at)
        values (
          p_limit_key,
          greatest(coalesce(v_until, v_now), v_now - make_interval(secs => p_lateness_ms / 1000))
            + make_interval(secs => p_interval_ms / 1000)
        )
        on conflict (limit_key) do update set next_call_at = excluded.next_call_at;

      -- A job asking again renews its own slot.
      insert into provider_slots (job_id, limit_key, expires_at)
        values (p_job_id, p_limit_key, v_now + make_interval(secs => p_lease_ms / 1000))
        on conflict (job_id) do update
          set limit_key = excluded.limit_key, expires_at = excluded.expires_at;
      return null;
    end
    $$
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function take_provider_slot`.execute(db);
}

import { sql, type Kysely } from 'kysely';
import { up as createFirstSlotTaking } from './2026_11_23_0014_create_take_provider_slot.js';

/**
 * Calls waiting for a provider's slot take them in the order they began to wait. Each waiter asks
 * again every recheck, so when a slot came free it went to whichever asked first after, or to a call
 * just arrived: with one slot and a backlog, a job could wait seconds behind later ones and the queue
 * estimate was wrong by as much. A waiter is now a row (`provider_slot_waiters`, its wait's start,
 * renewed by each ask); a free slot goes to a taker only if fewer live waiters of the key began
 * before it than there are free slots. A waiter that stops asking (its worker died, or it went back
 * to its workflow to sleep through a long wait) lapses after eight rechecks and holds no one back.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table provider_slot_waiters (
      job_id text primary key,
      limit_key text not null,
      waiting_since timestamptz not null,
      expires_at timestamptz not null
    )
  `.execute(db);
  await sql`create index provider_slot_waiters_by_key on provider_slot_waiters (limit_key, waiting_since)`.execute(
    db,
  );
  await sql`
    create or replace function take_provider_slot(
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
      v_since timestamptz;
      v_ahead integer;
    begin
      perform pg_advisory_xact_lock(hashtext('provider_slots:' || p_limit_key));
      v_now := clock_timestamp();

      -- This ask keeps (or starts) the asker's place; a waiter silent for eight rechecks has left.
      delete from provider_slot_waiters where limit_key = p_limit_key and expires_at <= v_now;
      insert into provider_slot_waiters (job_id, limit_key, waiting_since, expires_at)
        values (p_job_id, p_limit_key, v_now, v_now + make_interval(secs => 8 * p_recheck_ms / 1000))
        on conflict (job_id) do update
          set limit_key = excluded.limit_key, expires_at = excluded.expires_at,
            waiting_since = case when provider_slot_waiters.limit_key = excluded.limit_key
              then provider_slot_waiters.waiting_since else excluded.waiting_since end
        returning waiting_since into v_since;

      select paused_until into v_until from provider_pauses
        where limit_key = p_limit_key and paused_until > v_now;
      if found then
        return greatest(1, ceil(extract(epoch from v_until - v_now) * 1000));
      end if;

      delete from provider_slots where limit_key = p_limit_key and expires_at <= v_now;
      select count(*) into v_held from provider_slots
        where limit_key = p_limit_key and job_id <> p_job_id;
      select count(*) into v_ahead from provider_slot_waiters
        where limit_key = p_limit_key and job_id <> p_job_id
          and (waiting_since, job_id) < (v_since, p_job_id);
      if v_held + v_ahead >= p_capacity then
        return p_recheck_ms;
      end if;

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

      delete from provider_slot_waiters where job_id = p_job_id;
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
  await createFirstSlotTaking(db);
  await sql`drop table provider_slot_waiters`.execute(db);
}

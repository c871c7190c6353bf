import { sql, type Kysely } from 'kysely';

/**
 * `take_submit_token`: the per-key submit rate limit, GCRA as one timestamp per key (`submit_tat`),
 * moved one interval on unless it is more than the burst's tolerance ahead of now. The same UPDATE
 * proves the key live and reads its user and plan. Returns `taken` (with the user and plan),
 * `rate_limited` (with how far ahead the key's schedule is, in ms) or `unauthorized`.
 */
async function createTakeSubmitToken(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function take_submit_token(
      p_key_sha256 text,
      p_interval_secs double precision,
      p_tolerance_secs double precision
    ) returns table (outcome text, ahead_ms double precision, user_id text, plan text)
    language plpgsql as $$
    #variable_conflict use_column
    declare
      v_user text;
      v_plan text;
      v_tat timestamptz;
      v_live boolean;
    begin
      update api_keys k
        set submit_tat = greatest(coalesce(k.submit_tat, now()), now()) + make_interval(secs => p_interval_secs)
        from users u
        where k.key_sha256 = p_key_sha256 and k.revoked_at is null and u.id = k.user_id
          and greatest(coalesce(k.submit_tat, now()), now()) <= now() + make_interval(secs => p_tolerance_secs)
        returning u.id, u.plan into v_user, v_plan;
      if found then
        return query select 'taken', null::double precision, v_user, v_plan;
        return;
      end if;
      select k.submit_tat, k.revoked_at is null into v_tat, v_live from api_keys k
        where k.key_sha256 = p_key_sha256;
      if v_live then
        return query select 'rate_limited', (extract(epoch from v_tat - now()) * 1000)::double precision,
          null::text, null::text;
      else
        return query select 'unauthorized', null::double precision, null::text, null::text;
      end if;
    end;
    $$
  `.execute(db);
}

/**
 * `submit_job`: a whole submission in one statement, so one round trip and one transaction. Done from
 * the API as a rate-limit UPDATE, then begin, job INSERT, event INSERT + NOTIFY, ledger INSERT, balance
 * UPDATE and commit, it was 8 of the 10 round trips each submission cost the API.
 *
 * In order: the key's submit token (`take_submit_token`, which also proves the key live in the
 * statement that writes); a replay of the key's job, which reserves nothing; the cost taken from the
 * balance (the conditional UPDATE queues concurrent reservations on the user's row, so none overdraws);
 * then the job, its first event (announced on `p_channel`), its reservation in the ledger and, if its
 * webhook wants `queued`, that delivery. The cost is taken before the insert so that a job refused for
 * its cost never exists; a concurrent duplicate met at the insert gets the cost back and answers as a
 * replay. A refused submission has still used its submit token, as when the token was a statement of
 * its own.
 *
 * `p_event` (and the delivery's payload) are the JSON the API encodes, with the job's `createdAt` as
 * `"<created_at>"`: only the database knows that time, and it is written in the form JavaScript's
 * `toISOString` gives the same timestamp read back (milliseconds, truncated).
 *
 * Returns one row: `outcome` (`created`, `replayed`, `unauthorized`, `rate_limited` or
 * `insufficient_credits`), how far ahead the key's schedule is (ms, when rate limited), the balance
 * (when insufficient), the user's plan, and the job.
 */
async function createSubmitJob(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function submit_job(
      p_key_sha256 text,
      p_interval_secs double precision,
      p_tolerance_secs double precision,
      p_job jsonb,
      p_cost integer,
      p_event text,
      p_channel text,
      p_webhook_secret text,
      p_delivery jsonb
    ) returns table (outcome text, ahead_ms double precision, balance integer, plan text, job jobs)
    language plpgsql as $$
    #variable_conflict use_column
    declare
      v_new jobs := jsonb_populate_record(null::jobs, p_job);
      v_token record;
      v_plan text;
      v_row jobs;
      v_created_at text;
      v_event text;
    begin
      select * into v_token from take_submit_token(p_key_sha256, p_interval_secs, p_tolerance_secs);
      if v_token.outcome <> 'taken' or v_token.user_id <> v_new.user_id then
        return query select case when v_token.outcome = 'taken' then 'unauthorized' else v_token.outcome end,
          v_token.ahead_ms, null::integer, null::text, null::jobs;
        return;
      end if;
      v_plan := v_token.plan;

      select * into v_row from jobs j
        where j.user_id = v_new.user_id and j.idempotency_key = v_new.idempotency_key;
      if found then
        return query select 'replayed', null::double precision, null::integer, v_plan, v_row;
        return;
      end if;

      update users u
        set credits = u.credits - p_cost,
          -- Created on first use, so that every delivery of the job can be signed.
          webhook_secret = coalesce(u.webhook_secret, p_webhook_secret),
          webhook_secret_created_at =
            coalesce(u.webhook_secret_created_at, case when p_webhook_secret is not null then now() end)
        where u.id = v_new.user_id and u.credits >= p_cost;
      if not found then
        -- A duplicate committed while this one waited for the user's row is a replay, not a refusal.
        select * into v_row from jobs j
          where j.user_id = v_new.user_id and j.idempotency_key = v_new.idempotency_key;
        if found then
          return query select 'replayed', null::double precision, null::integer, v_plan, v_row;
        else
          return query select 'insufficient_credits', null::double precision,
            (select u.credits from users u where u.id = v_new.user_id), v_plan, null::jobs;
        end if;
        return;
      end if;

      -- No conflict target: the id derives from (user, key), so a concurrent duplicate may meet either
      -- unique index first, and both mean the same job.
      insert into jobs (id, user_id, idempotency_key, request_sha256, prompt_sha256, kind, provider, model,
          size, status, workflow_id, webhook)
        values (v_new.id, v_new.user_id, v_new.idempotency_key, v_new.request_sha256, v_new.prompt_sha256,
          v_new.kind, v_new.provider, v_new.model, v_new.size, v_new.status, v_new.workflow_id, v_new.webhook)
        on conflict do nothing
        returning * into v_row;
      if not found then
        update users u set credits = u.credits + p_cost where u.id = v_new.user_id;
        select * into v_row from jobs j
          where j.user_id = v_new.user_id and j.idempotency_key = v_new.idempotency_key;
        return query select 'replayed', null::double precision, null::integer, v_plan, v_row;
        return;
      end if;

      insert into credit_ledger (user_id, job_id, kind, amount)
        values (v_new.user_id, v_row.id, 'reserve', -p_cost);
      v_created_at :=
        to_json(to_char(v_row.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text;
      v_event := replace(p_event, '"<created_at>"', v_created_at);
      insert into job_events (job_id, seq, type, data)
        values (v_row.id, v_row.version, 'status', (v_event::jsonb) -> 'job');
      perform pg_notify(p_channel, v_event);
      if p_delivery is not null then
        insert into webhook_deliveries (id, job_id, seq, event_type, url, payload)
          values (p_delivery ->> 'id', v_row.id, v_row.version, 'status', p_delivery ->> 'url',
            replace(p_delivery ->> 'payload', '"<created_at>"', v_created_at))
          on conflict (job_id, seq) do nothing;
      end if;
      return query select 'created', null::double precision, null::integer, v_plan, v_row;
    end;
    $$
  `.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await createTakeSubmitToken(db);
  await createSubmitJob(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function submit_job(text, double precision, double precision, jsonb, integer, text, text, text, jsonb)`.execute(
    db,
  );
  await sql`drop function take_submit_token(text, double precision, double precision)`.execute(db);
}

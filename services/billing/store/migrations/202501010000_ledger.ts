// Frozen in time: never edit a migration that has shipped; add a new one.
//
// The hot paths (reserve, settle, bucket expiry) are PL/pgSQL functions so that each one is a
// single round trip holding the account's row lock for the shortest possible time; a chatty
// multi-statement transaction from Node would hold the lock across several network round trips
// and cap a hot team account at a few hundred operations per second. The spend order in
// `billing_reserve` mirrors `compareBucketsForSpend` in domain/spend-order.ts; the model-based
// property test checks that they agree.
//
// The functions' current definitions live in ../functions.sql.ts, applied after the last
// migration on every start; the bodies below are what this migration created when it ran.
import { sql, type Kysely } from "kysely";

// Prepared statements take one command each; split on top-level semicolons, outside $$ bodies.
async function executeScript(db: Kysely<unknown>, script: string): Promise<void> {
  let statement = "";
  let insideBody = false;
  for (const part of script.split(/(\$\$|;)/)) {
    if (part === "$$") insideBody = !insideBody;
    if (part === ";" && !insideBody) {
      if (statement.trim()) await sql.raw(statement).execute(db);
      statement = "";
    } else {
      statement += part;
    }
  }
  if (statement.trim()) await sql.raw(statement).execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await executeScript(db, `
create table billing_plans (
  code text primary key,
  name text not null,
  monthly_price_cents bigint not null check (monthly_price_cents >= 0),
  credits_per_cycle_mc bigint not null check (credits_per_cycle_mc >= 0),
  rollover_cycles integer not null check (rollover_cycles >= 0),
  on_exhausted text not null check (on_exhausted in ('stop', 'overage')),
  overage_rate_cents_per_credit bigint not null check (overage_rate_cents_per_credit >= 0),
  overage_cap_mc bigint not null check (overage_cap_mc >= 0),
  requests_per_minute integer not null check (requests_per_minute > 0),
  concurrency integer not null check (concurrency > 0),
  monthly_calls bigint not null check (monthly_calls > 0),
  max_upload_bytes bigint not null check (max_upload_bytes > 0),
  longest_side_pixels integer not null check (longest_side_pixels > 0),
  priority_lane text not null check (priority_lane in ('high', 'normal')),
  seats integer not null check (seats > 0)
);

create table billing_packs (
  code text primary key,
  price_cents bigint not null check (price_cents > 0),
  credits_mc bigint not null check (credits_mc > 0)
);

create table billing_price_books (
  version text primary key,
  rules jsonb not null,
  active boolean not null default false,
  created_at timestamptz not null
);
create unique index billing_price_books_one_active on billing_price_books (active) where active;

create table billing_accounts (
  account_id text primary key,
  plan_code text not null references billing_plans (code),
  -- Anniversary billing: cycle n since the anchor starts at anchor + n months (see cycleStart).
  cycle_anchor_at timestamptz not null,
  cycles_since_anchor integer not null check (cycles_since_anchor >= 0),
  -- Counts every cycle of the account across plan changes (holds and reports refer to it).
  cycle_index integer not null check (cycle_index >= 0),
  cycle_started_at timestamptz not null,
  next_renewal_at timestamptz not null,
  created_at timestamptz not null,
  check (next_renewal_at > cycle_started_at)
);

create table billing_credit_accounts (
  id bigserial primary key,
  account_id text not null references billing_accounts (account_id),
  pool text not null check (pool in ('api', 'web')),
  remaining_mc bigint not null default 0 check (remaining_mc >= 0),
  held_mc bigint not null default 0 check (held_mc >= 0),
  overage_held_mc bigint not null default 0 check (overage_held_mc >= 0 and overage_held_mc <= held_mc),
  cycle_overage_mc bigint not null default 0 check (cycle_overage_mc >= 0),
  low_balance_threshold_mc bigint not null default 0 check (low_balance_threshold_mc >= 0),
  unique (account_id, pool)
);

create table billing_members (
  account_id text not null references billing_accounts (account_id),
  member_id text not null,
  role text not null check (role in ('owner', 'admin', 'member')),
  monthly_cap_mc bigint check (monthly_cap_mc > 0),
  created_at timestamptz not null,
  primary key (account_id, member_id)
);

create table billing_buckets (
  id bigserial primary key,
  credit_account_id bigint not null references billing_credit_accounts (id),
  kind text not null check (kind in ('trial', 'subscription', 'pack', 'top_up', 'promo', 'refund')),
  granted_mc bigint not null check (granted_mc > 0),
  remaining_mc bigint not null check (remaining_mc >= 0),
  held_mc bigint not null default 0 check (held_mc >= 0),
  captured_mc bigint not null default 0 check (captured_mc >= 0),
  expired_mc bigint not null default 0 check (expired_mc >= 0),
  voided_mc bigint not null default 0 check (voided_mc >= 0),
  effective_at timestamptz not null,
  expires_at timestamptz,
  priority integer not null,
  created_at timestamptz not null,
  grant_key text not null,
  price_cents bigint not null default 0 check (price_cents >= 0),
  description text,
  unique (credit_account_id, grant_key),
  check (expires_at is null or expires_at > effective_at),
  -- Every millicredit granted is in exactly one place.
  check (granted_mc = remaining_mc + held_mc + captured_mc + expired_mc + voided_mc)
);
-- No index mentions remaining_mc or held_mc (not even in a predicate), and pages keep free
-- room, so the updates of every reserve and capture stay heap-only (HOT) on a hot account.
alter table billing_buckets set (fillfactor = 70);
alter table billing_credit_accounts set (fillfactor = 50);
create index billing_buckets_spendable on billing_buckets (credit_account_id, priority, expires_at, created_at, id);
create index billing_buckets_expiring on billing_buckets (expires_at) where expires_at is not null;

create table billing_holds (
  id text primary key,
  credit_account_id bigint not null references billing_credit_accounts (id),
  idempotency_key text not null,
  request_hash text not null,
  amount_mc bigint not null check (amount_mc > 0),
  overage_mc bigint not null check (overage_mc >= 0 and overage_mc <= amount_mc),
  status text not null check (status in ('open', 'captured', 'released', 'expired')),
  expires_at timestamptz not null,
  created_at timestamptz not null,
  cycle_index integer not null,
  available_after_mc bigint not null,
  captured_mc bigint not null default 0 check (captured_mc >= 0 and captured_mc <= amount_mc),
  captured_overage_mc bigint not null default 0 check (captured_overage_mc >= 0 and captured_overage_mc <= overage_mc),
  returned_mc bigint not null default 0 check (returned_mc >= 0),
  expired_on_return_mc bigint not null default 0 check (expired_on_return_mc >= 0),
  settled_at timestamptz,
  settle_available_mc bigint,
  settle_reason text,
  api_key_id text,
  member_id text,
  description text,
  unique (credit_account_id, idempotency_key),
  check ((status = 'open') = (settled_at is null)),
  check (status = 'open' or captured_mc + returned_mc + expired_on_return_mc + (overage_mc - captured_overage_mc) = amount_mc)
);
create index billing_holds_open_by_deadline on billing_holds (expires_at) where status = 'open';
create index billing_holds_by_account on billing_holds (credit_account_id, created_at desc, id desc);
create index billing_holds_by_member on billing_holds (credit_account_id, member_id, cycle_index) where member_id is not null;

create table billing_hold_allocations (
  hold_id text not null references billing_holds (id),
  position integer not null,
  bucket_id bigint not null references billing_buckets (id),
  amount_mc bigint not null check (amount_mc > 0),
  captured_mc bigint not null default 0 check (captured_mc >= 0),
  returned_mc bigint not null default 0 check (returned_mc >= 0),
  expired_mc bigint not null default 0 check (expired_mc >= 0),
  primary key (hold_id, position),
  check (captured_mc + returned_mc + expired_mc in (0, amount_mc))
);

-- Append-only: per bucket, remaining = sum(remaining_delta_mc) and held = sum(held_delta_mc),
-- overage rows have no bucket and only move held.
create table billing_ledger_entries (
  id bigserial primary key,
  credit_account_id bigint not null references billing_credit_accounts (id),
  bucket_id bigint references billing_buckets (id),
  hold_id text references billing_holds (id),
  kind text not null check (kind in ('grant', 'reserve', 'capture', 'release', 'expire', 'void', 'extend',
    'overage_reserve', 'overage_capture', 'overage_release')),
  remaining_delta_mc bigint not null,
  held_delta_mc bigint not null,
  occurred_at timestamptz not null
);
create index billing_ledger_entries_by_account on billing_ledger_entries (credit_account_id, id desc);

create function billing_ledger_is_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'billing_ledger_entries is append-only';
end $$;
create trigger billing_ledger_entries_append_only before update or delete on billing_ledger_entries
  for each row execute function billing_ledger_is_append_only();

create table billing_cycle_reports (
  account_id text not null references billing_accounts (account_id),
  cycle_index integer not null,
  plan_code text not null,
  started_at timestamptz not null,
  ended_at timestamptz not null,
  overage_mc bigint not null check (overage_mc >= 0),
  overage_cents bigint not null check (overage_cents >= 0),
  primary key (account_id, cycle_index)
);

-- Events are written in the same transaction as the change they describe and relayed to the
-- bus afterwards, so a crash between commit and publish delays an event but never loses it.
create table billing_outbox (
  id bigserial primary key,
  subject text not null,
  payload jsonb not null,
  created_at timestamptz not null
);
`);

  await executeScript(db, `
create function billing_spendable_mc(p_credit_account_id bigint, p_now timestamptz) returns bigint
language sql stable as $$
  select coalesce(sum(remaining_mc), 0)::bigint from billing_buckets
  where credit_account_id = p_credit_account_id and remaining_mc > 0
    and effective_at <= p_now and (expires_at is null or expires_at > p_now)
$$;
`);

  await executeScript(db, `
create function billing_reserve(
  p_account_id text, p_pool text, p_amount_mc bigint, p_idempotency_key text, p_request_hash text,
  p_hold_id text, p_ttl_seconds integer, p_now timestamptz, p_api_key_id text, p_member_id text,
  p_description text
) returns jsonb language plpgsql as $$
declare
  v_account billing_credit_accounts%rowtype;
  v_existing billing_holds%rowtype;
  v_on_exhausted text;
  v_overage_cap_mc bigint;
  v_cycle_index integer;
  v_next_renewal_at timestamptz;
  v_member_cap_mc bigint;
  v_member_used_mc bigint;
  v_available_mc bigint;
  v_overage_mc bigint := 0;
  v_need_mc bigint;
  v_take_mc bigint;
  v_position integer := 0;
  v_bucket record;
  v_bucket_ids bigint[] := '{}';
  v_bucket_remaining bigint[] := '{}';
  v_index integer;
begin
  if p_amount_mc <= 0 then
    return jsonb_build_object('outcome', 'invalid_amount');
  end if;
  -- The account row lock serializes every change to this pool; everything below reads fresh rows.
  select * into v_account from billing_credit_accounts where account_id = p_account_id and pool = p_pool for update;
  if not found then
    return jsonb_build_object('outcome', 'account_not_found');
  end if;
  select * into v_existing from billing_holds where credit_account_id = v_account.id and idempotency_key = p_idempotency_key;
  if found then
    if v_existing.request_hash <> p_request_hash then
      return jsonb_build_object('outcome', 'idempotency_conflict', 'hold_id', v_existing.id);
    end if;
    return jsonb_build_object('outcome', 'ok', 'replayed', true, 'hold_id', v_existing.id,
      'amount_mc', v_existing.amount_mc, 'overage_mc', v_existing.overage_mc,
      'expires_at', v_existing.expires_at, 'available_mc', v_existing.available_after_mc);
  end if;
  select p.on_exhausted, p.overage_cap_mc, a.cycle_index, a.next_renewal_at
    into v_on_exhausted, v_overage_cap_mc, v_cycle_index, v_next_renewal_at
    from billing_accounts a join billing_plans p on p.code = a.plan_code where a.account_id = p_account_id;
  if v_next_renewal_at <= p_now then
    -- The caller renews (grants the new cycle) and retries, so a late sweeper never starves a paying user.
    return jsonb_build_object('outcome', 'renewal_due');
  end if;
  if p_member_id <> '' then
    select monthly_cap_mc into v_member_cap_mc from billing_members where account_id = p_account_id and member_id = p_member_id;
    if v_member_cap_mc is not null then
      select coalesce(sum(case when status = 'open' then amount_mc else captured_mc end), 0) into v_member_used_mc
        from billing_holds where credit_account_id = v_account.id and member_id = p_member_id and cycle_index = v_cycle_index;
      if v_member_used_mc + p_amount_mc > v_member_cap_mc then
        return jsonb_build_object('outcome', 'member_cap_reached', 'used_mc', v_member_used_mc,
          'cap_mc', v_member_cap_mc, 'cost_mc', p_amount_mc);
      end if;
    end if;
  end if;
  -- One scan, in spend order: priority, then soonest expiry (never-expiring last), then oldest.
  v_available_mc := 0;
  for v_bucket in
    select id, remaining_mc from billing_buckets
    where credit_account_id = v_account.id and remaining_mc > 0
      and effective_at <= p_now and (expires_at is null or expires_at > p_now)
    order by priority, expires_at nulls last, created_at, id
  loop
    v_bucket_ids := v_bucket_ids || v_bucket.id;
    v_bucket_remaining := v_bucket_remaining || v_bucket.remaining_mc;
    v_available_mc := v_available_mc + v_bucket.remaining_mc;
  end loop;
  if v_available_mc < p_amount_mc then
    if v_on_exhausted = 'overage'
       and v_account.cycle_overage_mc + v_account.overage_held_mc + (p_amount_mc - v_available_mc) <= v_overage_cap_mc then
      v_overage_mc := p_amount_mc - v_available_mc;
    else
      return jsonb_build_object('outcome', 'insufficient_credits', 'available_mc', v_available_mc,
        'cost_mc', p_amount_mc, 'overage_cap_reached', v_on_exhausted = 'overage');
    end if;
  end if;
  insert into billing_holds (id, credit_account_id, idempotency_key, request_hash, amount_mc, overage_mc, status,
      expires_at, created_at, cycle_index, available_after_mc, api_key_id, member_id, description)
    values (p_hold_id, v_account.id, p_idempotency_key, p_request_hash, p_amount_mc, v_overage_mc, 'open',
      p_now + make_interval(secs => p_ttl_seconds), p_now, v_cycle_index, v_available_mc - (p_amount_mc - v_overage_mc),
      nullif(p_api_key_id, ''), nullif(p_member_id, ''), nullif(p_description, ''));
  v_need_mc := p_amount_mc - v_overage_mc;
  v_index := 1;
  while v_need_mc > 0 and v_index <= coalesce(array_length(v_bucket_ids, 1), 0) loop
    v_take_mc := least(v_need_mc, v_bucket_remaining[v_index]);
    update billing_buckets set remaining_mc = remaining_mc - v_take_mc, held_mc = held_mc + v_take_mc where id = v_bucket_ids[v_index];
    insert into billing_hold_allocations (hold_id, position, bucket_id, amount_mc) values (p_hold_id, v_position, v_bucket_ids[v_index], v_take_mc);
    insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
      values (v_account.id, v_bucket_ids[v_index], p_hold_id, 'reserve', -v_take_mc, v_take_mc, p_now);
    v_position := v_position + 1;
    v_need_mc := v_need_mc - v_take_mc;
    v_index := v_index + 1;
  end loop;
  if v_need_mc <> 0 then
    raise exception 'billing invariant broken: reserve left % millicredits unfunded', v_need_mc;
  end if;
  if v_overage_mc > 0 then
    insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
      values (v_account.id, null, p_hold_id, 'overage_reserve', 0, v_overage_mc, p_now);
  end if;
  update billing_credit_accounts set remaining_mc = remaining_mc - (p_amount_mc - v_overage_mc),
      held_mc = held_mc + p_amount_mc, overage_held_mc = overage_held_mc + v_overage_mc
    where id = v_account.id;
  return jsonb_build_object('outcome', 'ok', 'replayed', false, 'hold_id', p_hold_id, 'amount_mc', p_amount_mc,
    'overage_mc', v_overage_mc, 'expires_at', p_now + make_interval(secs => p_ttl_seconds),
    'available_mc', v_available_mc - (p_amount_mc - v_overage_mc));
end $$;
`);

  await executeScript(db, `
create function billing_settle(p_hold_id text, p_action text, p_amount_mc bigint, p_now timestamptz, p_reason text, p_emit boolean)
returns jsonb language plpgsql as $$
declare
  v_credit_account_id bigint;
  v_account billing_credit_accounts%rowtype;
  v_hold billing_holds%rowtype;
  v_allocation record;
  v_left_mc bigint;
  v_take_mc bigint;
  v_back_mc bigint;
  v_captured_buckets_mc bigint := 0;
  v_returned_mc bigint := 0;
  v_expired_back_mc bigint := 0;
  v_overage_take_mc bigint;
  v_available_mc bigint;
  v_before_mc bigint;
  v_status text;
  v_account_id text;
begin
  select credit_account_id into v_credit_account_id from billing_holds where id = p_hold_id;
  if not found then
    return jsonb_build_object('outcome', 'hold_not_found');
  end if;
  select * into v_account from billing_credit_accounts where id = v_credit_account_id for update;
  select * into v_hold from billing_holds where id = p_hold_id;
  if v_hold.status <> 'open' then
    if (p_action = 'capture' and v_hold.status = 'captured' and v_hold.captured_mc = p_amount_mc)
       or (p_action = 'release' and v_hold.status = 'released') then
      return jsonb_build_object('outcome', 'ok', 'replayed', true, 'captured_mc', v_hold.captured_mc,
        'overage_mc', v_hold.captured_overage_mc, 'returned_mc', v_hold.amount_mc - v_hold.captured_mc,
        'available_mc', v_hold.settle_available_mc);
    end if;
    if v_hold.status = 'expired' then
      return jsonb_build_object('outcome', 'hold_expired');
    end if;
    return jsonb_build_object('outcome', 'hold_already_settled', 'status', v_hold.status);
  end if;
  if p_action <> 'expire' and v_hold.expires_at <= p_now then
    -- Past its deadline the hold belongs to the sweeper; expire it here so both agree.
    perform billing_settle(p_hold_id, 'expire', 0, p_now, 'deadline passed', p_emit);
    return jsonb_build_object('outcome', 'hold_expired');
  end if;
  if p_action = 'capture' and (p_amount_mc < 0 or p_amount_mc > v_hold.amount_mc) then
    return jsonb_build_object('outcome', 'capture_exceeds_hold', 'held_mc', v_hold.amount_mc, 'cost_mc', p_amount_mc);
  end if;
  v_left_mc := case when p_action = 'capture' then p_amount_mc else 0 end;
  -- Charge the buckets reserved first (they were first in spend order), return the rest.
  for v_allocation in
    select a.position, a.bucket_id, a.amount_mc, b.expires_at
    from billing_hold_allocations a join billing_buckets b on b.id = a.bucket_id
    where a.hold_id = p_hold_id order by a.position
  loop
    v_take_mc := least(v_left_mc, v_allocation.amount_mc);
    v_back_mc := v_allocation.amount_mc - v_take_mc;
    v_left_mc := v_left_mc - v_take_mc;
    v_captured_buckets_mc := v_captured_buckets_mc + v_take_mc;
    if v_allocation.expires_at is not null and v_allocation.expires_at <= p_now then
      -- A bucket that expired while held is booked as expired on return, never resurrected.
      update billing_buckets set held_mc = held_mc - v_allocation.amount_mc, captured_mc = captured_mc + v_take_mc,
          expired_mc = expired_mc + v_back_mc where id = v_allocation.bucket_id;
      update billing_hold_allocations set captured_mc = v_take_mc, expired_mc = v_back_mc
        where hold_id = p_hold_id and position = v_allocation.position;
      v_expired_back_mc := v_expired_back_mc + v_back_mc;
      if v_back_mc > 0 then
        insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
          values (v_account.id, v_allocation.bucket_id, p_hold_id, 'expire', 0, -v_back_mc, p_now);
      end if;
    else
      update billing_buckets set held_mc = held_mc - v_allocation.amount_mc, captured_mc = captured_mc + v_take_mc,
          remaining_mc = remaining_mc + v_back_mc where id = v_allocation.bucket_id;
      update billing_hold_allocations set captured_mc = v_take_mc, returned_mc = v_back_mc
        where hold_id = p_hold_id and position = v_allocation.position;
      v_returned_mc := v_returned_mc + v_back_mc;
      if v_back_mc > 0 then
        insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
          values (v_account.id, v_allocation.bucket_id, p_hold_id, 'release', v_back_mc, -v_back_mc, p_now);
      end if;
    end if;
    if v_take_mc > 0 then
      insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
        values (v_account.id, v_allocation.bucket_id, p_hold_id, 'capture', 0, -v_take_mc, p_now);
    end if;
  end loop;
  v_overage_take_mc := v_left_mc;
  if v_overage_take_mc > v_hold.overage_mc then
    raise exception 'billing invariant broken: hold % captures % overage but held %', p_hold_id, v_overage_take_mc, v_hold.overage_mc;
  end if;
  if v_overage_take_mc > 0 then
    insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
      values (v_account.id, null, p_hold_id, 'overage_capture', 0, -v_overage_take_mc, p_now);
  end if;
  if v_hold.overage_mc - v_overage_take_mc > 0 then
    insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
      values (v_account.id, null, p_hold_id, 'overage_release', 0, -(v_hold.overage_mc - v_overage_take_mc), p_now);
  end if;
  update billing_credit_accounts set remaining_mc = remaining_mc + v_returned_mc, held_mc = held_mc - v_hold.amount_mc,
      overage_held_mc = overage_held_mc - v_hold.overage_mc, cycle_overage_mc = cycle_overage_mc + v_overage_take_mc
    where id = v_account.id;
  v_available_mc := billing_spendable_mc(v_account.id, p_now);
  v_status := case p_action when 'capture' then 'captured' when 'release' then 'released' else 'expired' end;
  update billing_holds set status = v_status, captured_mc = v_captured_buckets_mc + v_overage_take_mc,
      captured_overage_mc = v_overage_take_mc, returned_mc = v_returned_mc, expired_on_return_mc = v_expired_back_mc,
      settled_at = p_now, settle_available_mc = v_available_mc, settle_reason = nullif(p_reason, '')
    where id = p_hold_id;
  if p_emit and v_captured_buckets_mc + v_overage_take_mc > 0 then
    v_account_id := v_account.account_id;
    insert into billing_outbox (subject, payload, created_at) values ('credits.captured', jsonb_build_object(
      'account_id', v_account_id, 'pool', v_account.pool, 'hold_id', p_hold_id,
      'captured_mc', v_captured_buckets_mc + v_overage_take_mc, 'overage_mc', v_overage_take_mc,
      'available_mc', v_available_mc, 'member_id', coalesce(v_hold.member_id, ''),
      'api_key_id', coalesce(v_hold.api_key_id, ''), 'occurred_at', p_now), p_now);
    -- What would be available had this job not been charged; crossing a threshold fires once.
    v_before_mc := v_available_mc + v_captured_buckets_mc;
    if v_account.low_balance_threshold_mc > 0 and v_before_mc >= v_account.low_balance_threshold_mc
       and v_available_mc < v_account.low_balance_threshold_mc and v_available_mc > 0 then
      insert into billing_outbox (subject, payload, created_at) values ('credits.low', jsonb_build_object(
        'account_id', v_account_id, 'pool', v_account.pool, 'available_mc', v_available_mc,
        'threshold_mc', v_account.low_balance_threshold_mc, 'occurred_at', p_now), p_now);
    end if;
    if v_available_mc = 0 and v_before_mc > 0 then
      insert into billing_outbox (subject, payload, created_at) values ('credits.exhausted', jsonb_build_object(
        'account_id', v_account_id, 'pool', v_account.pool, 'occurred_at', p_now), p_now);
    end if;
  end if;
  return jsonb_build_object('outcome', 'ok', 'replayed', false, 'status', v_status,
    'captured_mc', v_captured_buckets_mc + v_overage_take_mc, 'overage_mc', v_overage_take_mc,
    'returned_mc', v_hold.amount_mc - v_captured_buckets_mc - v_overage_take_mc, 'available_mc', v_available_mc);
end $$;
`);

  await executeScript(db, `
create function billing_expire_buckets(p_credit_account_id bigint, p_now timestamptz, p_emit boolean) returns integer
language plpgsql as $$
declare
  v_account billing_credit_accounts%rowtype;
  v_bucket record;
  v_count integer := 0;
begin
  select * into v_account from billing_credit_accounts where id = p_credit_account_id for update;
  for v_bucket in
    select id, kind, remaining_mc from billing_buckets
    where credit_account_id = p_credit_account_id and remaining_mc > 0 and expires_at <= p_now order by id
  loop
    update billing_buckets set expired_mc = expired_mc + remaining_mc, remaining_mc = 0 where id = v_bucket.id;
    insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
      values (p_credit_account_id, v_bucket.id, null, 'expire', -v_bucket.remaining_mc, 0, p_now);
    update billing_credit_accounts set remaining_mc = remaining_mc - v_bucket.remaining_mc where id = p_credit_account_id;
    if p_emit then
      insert into billing_outbox (subject, payload, created_at) values ('grant.expired', jsonb_build_object(
        'account_id', v_account.account_id, 'pool', v_account.pool, 'bucket_id', v_bucket.id::text,
        'kind', v_bucket.kind, 'expired_mc', v_bucket.remaining_mc, 'occurred_at', p_now), p_now);
    end if;
    v_count := v_count + 1;
  end loop;
  return v_count;
end $$;
`);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await executeScript(db, `
drop function if exists billing_expire_buckets(bigint, timestamptz, boolean);
drop function if exists billing_settle(text, text, bigint, timestamptz, text, boolean);
drop function if exists billing_reserve(text, text, bigint, text, text, text, integer, timestamptz, text, text, text);
drop function if exists billing_spendable_mc(bigint, timestamptz);
drop table if exists billing_outbox, billing_cycle_reports, billing_ledger_entries, billing_hold_allocations,
  billing_holds, billing_buckets, billing_members, billing_credit_accounts, billing_accounts,
  billing_price_books, billing_packs, billing_plans;
drop function if exists billing_ledger_is_append_only();
`);
}

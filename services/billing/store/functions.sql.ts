// The current definitions of billing's SQL functions, applied after the last migration on every
// start (store/migrations.ts). A fix to a function is an edit here, not a copy of its body in a
// new migration; the migrations that first created these functions stay as they shipped.
//
// The hot paths (reserve, settle, bucket expiry) are PL/pgSQL functions so that each one is a
// single round trip holding the account's row lock for the shortest possible time; a chatty
// multi-statement transaction from Node would hold the lock across several network round trips
// and cap a hot team account at a few hundred operations per second. The spend order in
// `billing_reserve` mirrors `compareBucketsForSpend` in domain/spend-order.ts; the model-based
// property test checks that they agree.
//
// `create or replace` keeps a function's identity (grants, the trigger that uses it) but cannot
// change its argument types (that would add an overload beside the old one), its return type or
// its parameter names. Such a change needs a migration that drops the old function first; the
// new definition still lives only here.
import { sql, type Kysely } from "kysely";

export interface SqlFunction {
  /** The function's name; billing defines no overloads, so the name alone identifies it. */
  name: string;
  /** One `create or replace function` statement. */
  statement: string;
}

export const BILLING_FUNCTIONS: readonly SqlFunction[] = [
  {
    name: "billing_ledger_is_append_only",
    // Trigger function: ledger entries are never updated or deleted.
    statement: `
create or replace function billing_ledger_is_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'billing_ledger_entries is append-only';
end $$`,
  },
  {
    name: "billing_spendable_mc",
    // What a pool can spend at `p_now`: remaining credits of buckets in effect and not expired.
    statement: `
create or replace function billing_spendable_mc(p_credit_account_id bigint, p_now timestamptz) returns bigint
language sql stable as $$
  select coalesce(sum(remaining_mc), 0)::bigint from billing_buckets
  where credit_account_id = p_credit_account_id and remaining_mc > 0
    and effective_at <= p_now and (expires_at is null or expires_at > p_now)
$$`,
  },
  {
    name: "billing_reserve",
    // Reserve: locks the pool, replays or refuses, or holds the amount across buckets in spend order (overage past them where the plan allows). Answers ReserveAnswer (hold.store.ts).
    statement: `
create or replace function billing_reserve(
  p_account_id text, p_pool text, p_amount_mc bigint, p_idempotency_key text, p_request_hash text,
  p_hold_id text, p_ttl_seconds integer, p_now timestamptz, p_api_key_id text, p_member_id text,
  p_description text, p_price_book_version text default ''
) returns jsonb language plpgsql as $$
declare
  v_account billing_credit_accounts%rowtype;
  v_existing billing_holds%rowtype;
  v_on_exhausted text;
  v_overage_cap_mc bigint;
  v_overage_rate_cents bigint;
  v_overage_offered boolean;
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
      'expires_at', v_existing.expires_at, 'available_mc', v_existing.available_after_mc,
      'price_book_version', coalesce(v_existing.price_book_version, ''));
  end if;
  -- The account's own choice when credits run out, else its plan's (domain/exhaustion.ts).
  select coalesce(a.on_exhausted, p.on_exhausted), p.overage_cap_mc, p.overage_rate_cents_per_credit, a.cycle_index, a.next_renewal_at
    into v_on_exhausted, v_overage_cap_mc, v_overage_rate_cents, v_cycle_index, v_next_renewal_at
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
  -- One scan, in spend order: soonest expiry first whatever the kind (never-expiring last), then
  -- priority, then oldest, then id (compareBucketsForSpend; index billing_buckets_spend_order).
  v_available_mc := 0;
  for v_bucket in
    select id, remaining_mc from billing_buckets
    where credit_account_id = v_account.id and remaining_mc > 0
      and effective_at <= p_now and (expires_at is null or expires_at > p_now)
    order by expires_at nulls last, priority, created_at, id
  loop
    v_bucket_ids := v_bucket_ids || v_bucket.id;
    v_bucket_remaining := v_bucket_remaining || v_bucket.remaining_mc;
    v_available_mc := v_available_mc + v_bucket.remaining_mc;
  end loop;
  if v_available_mc < p_amount_mc then
    if v_on_exhausted = 'overage' and v_overage_rate_cents > 0
       and v_account.cycle_overage_mc + v_account.overage_held_mc + (p_amount_mc - v_available_mc) <= v_overage_cap_mc then
      v_overage_mc := p_amount_mc - v_available_mc;
    else
      v_overage_offered := v_overage_rate_cents > 0 and v_overage_cap_mc > 0;
      return jsonb_build_object('outcome', 'insufficient_credits', 'available_mc', v_available_mc,
        'cost_mc', p_amount_mc, 'on_exhausted', v_on_exhausted, 'overage_offered', v_overage_offered,
        'overage_cap_reached', v_on_exhausted = 'overage' and v_overage_offered,
        'overage_rate_cents_per_credit', v_overage_rate_cents);
    end if;
  end if;
  insert into billing_holds (id, credit_account_id, idempotency_key, request_hash, amount_mc, overage_mc, status,
      expires_at, created_at, cycle_index, available_after_mc, api_key_id, member_id, description, price_book_version)
    values (p_hold_id, v_account.id, p_idempotency_key, p_request_hash, p_amount_mc, v_overage_mc, 'open',
      p_now + make_interval(secs => p_ttl_seconds), p_now, v_cycle_index, v_available_mc - (p_amount_mc - v_overage_mc),
      nullif(p_api_key_id, ''), nullif(p_member_id, ''), nullif(p_description, ''), nullif(p_price_book_version, ''));
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
    'available_mc', v_available_mc - (p_amount_mc - v_overage_mc), 'price_book_version', p_price_book_version);
end $$`,
  },
  {
    name: "billing_settle",
    // Capture, release or expire a hold under its pool's lock; writes the outbox events when `p_emit`. Answers SettleAnswer (hold.store.ts).
    statement: `
create or replace function billing_settle(p_hold_id text, p_action text, p_amount_mc bigint, p_now timestamptz, p_reason text, p_emit boolean)
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
  v_void_mc bigint;
  v_voided_mc bigint := 0;
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
    select a.position, a.bucket_id, a.amount_mc, b.expires_at, b.owed_mc
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
          expired_mc = expired_mc + v_back_mc, owed_mc = least(owed_mc, held_mc - v_allocation.amount_mc)
        where id = v_allocation.bucket_id;
      update billing_hold_allocations set captured_mc = v_take_mc, expired_mc = v_back_mc
        where hold_id = p_hold_id and position = v_allocation.position;
      v_expired_back_mc := v_expired_back_mc + v_back_mc;
      if v_back_mc > 0 then
        insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
          values (v_account.id, v_allocation.bucket_id, p_hold_id, 'expire', 0, -v_back_mc, p_now);
      end if;
    else
      -- A refund that found these credits held takes them now, so a refunded payment's credits never come back.
      v_void_mc := least(v_back_mc, v_allocation.owed_mc);
      update billing_buckets set held_mc = held_mc - v_allocation.amount_mc, captured_mc = captured_mc + v_take_mc,
          remaining_mc = remaining_mc + v_back_mc - v_void_mc, voided_mc = voided_mc + v_void_mc,
          owed_mc = least(owed_mc - v_void_mc, held_mc - v_allocation.amount_mc)
        where id = v_allocation.bucket_id;
      update billing_hold_allocations set captured_mc = v_take_mc, returned_mc = v_back_mc
        where hold_id = p_hold_id and position = v_allocation.position;
      v_returned_mc := v_returned_mc + v_back_mc;
      if v_back_mc > 0 then
        insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
          values (v_account.id, v_allocation.bucket_id, p_hold_id, 'release', v_back_mc, -v_back_mc, p_now);
      end if;
      if v_void_mc > 0 then
        insert into billing_ledger_entries (credit_account_id, bucket_id, hold_id, kind, remaining_delta_mc, held_delta_mc, occurred_at)
          values (v_account.id, v_allocation.bucket_id, p_hold_id, 'refund', -v_void_mc, 0, p_now);
        v_voided_mc := v_voided_mc + v_void_mc;
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
  update billing_credit_accounts set remaining_mc = remaining_mc + v_returned_mc - v_voided_mc, held_mc = held_mc - v_hold.amount_mc,
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
  return jsonb_build_object('outcome', 'ok', 'replayed', false, 'status', v_status, 'refunded_mc', v_voided_mc,
    'captured_mc', v_captured_buckets_mc + v_overage_take_mc, 'overage_mc', v_overage_take_mc,
    'returned_mc', v_hold.amount_mc - v_captured_buckets_mc - v_overage_take_mc, 'available_mc', v_available_mc);
end $$`,
  },
  {
    name: "billing_expire_buckets",
    // Books a pool's credits past their expiry as expired; returns how many buckets.
    statement: `
create or replace function billing_expire_buckets(p_credit_account_id bigint, p_now timestamptz, p_emit boolean) returns integer
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
end $$`,
  },
];

/** Replaces every billing function with its current definition; the caller holds the migration transaction. */
export async function applyBillingFunctions(db: Kysely<any>): Promise<void> {
  for (const definition of BILLING_FUNCTIONS) await sql.raw(definition.statement).execute(db);
}

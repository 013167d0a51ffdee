// Holds: reserve and settle are one PL/pgSQL call each (functions.sql.ts), so the account's row
// lock is held for one round trip; the rest are the sweeper's and the extension's reads.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { HoldDeadline, HoldStatus } from "../domain/holds.ts";
import { exhaustedMessage, type ExhaustedChoices } from "../domain/exhaustion.ts";
import { fail, type Failure, type Outcome } from "../domain/outcomes.ts";
import type { OnExhausted } from "../domain/plans.ts";
import type { BillingExecutor, PoolName } from "./schema.ts";
import { onlyRow, toDate } from "./views.ts";

/** billing_reserve's answer, one member per outcome (amounts in millicredits). */
export type ReserveAnswer =
  | {
      outcome: "ok";
      /** True when the idempotency key matched an earlier hold with the same request hash. */
      replayed: boolean;
      hold_id: string;
      amount_mc: number;
      overage_mc: number;
      /** ISO timestamp (JSON has no dates). */
      expires_at: string;
      available_mc: number;
      /** The version the hold was made with; "" for none. */
      price_book_version: string;
    }
  | { outcome: "renewal_due" }
  | {
      outcome: "insufficient_credits";
      available_mc: number;
      cost_mc: number;
      on_exhausted: OnExhausted;
      overage_offered: boolean;
      overage_cap_reached: boolean;
      overage_rate_cents_per_credit: number;
    }
  | { outcome: "member_cap_reached"; used_mc: number; cap_mc: number; cost_mc: number }
  | { outcome: "idempotency_conflict"; hold_id: string }
  | { outcome: "account_not_found" }
  | { outcome: "invalid_amount" };

interface SettledAmounts {
  captured_mc: number;
  overage_mc: number;
  returned_mc: number;
  available_mc: number;
  /** What the settlement took for refunds that found the credits held (absent on a replay). */
  refunded_mc?: number;
}

/** billing_settle's answer, one member per outcome; a replayed settlement does not repeat the status. */
export type SettleAnswer =
  | ({ outcome: "ok"; replayed: false; status: Exclude<HoldStatus, "open"> } & SettledAmounts)
  | ({ outcome: "ok"; replayed: true } & SettledAmounts)
  | { outcome: "hold_not_found" }
  | { outcome: "hold_expired" }
  | { outcome: "hold_already_settled"; status: Exclude<HoldStatus, "open"> }
  | { outcome: "capture_exceeds_hold"; held_mc: number; cost_mc: number };

export type SettleAction = "capture" | "release" | "expire";

export interface SettleResult {
  capturedMillicredits: number;
  overageMillicredits: number;
  returnedMillicredits: number;
  availableMillicredits: number;
  replayed: boolean;
}

export interface ReserveCall {
  accountId: string;
  pool: PoolName;
  amountMillicredits: number;
  idempotencyKey: string;
  requestHash: string;
  ttlSeconds: number;
  now: Date;
  apiKeyId?: string;
  memberId?: string;
  description?: string;
  priceBookVersion?: string;
}

/**
 * The version as billing_reserve's last argument, or nothing: without one the call has the
 * parameters billing_reserve had before 202611280013, so code that quotes no version also runs
 * on a database not migrated yet (the parameter defaults to '' since).
 */
function versionArgument(priceBookVersion: string | undefined) {
  return priceBookVersion ? sql`, ${priceBookVersion}` : sql``;
}

export interface SettleCall {
  holdId: string;
  action: SettleAction;
  /** What a capture charges; 0 for release and expire. */
  amountMillicredits: number;
  now: Date;
  reason: string;
  /** Write outbox events in the same transaction. */
  emitEvents: boolean;
}

/** Throws on an answer the function cannot give: the SQL and this file disagree, a programmer error. */
function unknownOutcome(functionName: string, answer: never): never {
  throw new Error(`${functionName} answered an unknown outcome ${(answer as { outcome: string }).outcome}`);
}

/** What a refused reserve means to the caller; `ok` and `renewal_due` are the ledger's to handle. */
export function reserveFailure(answer: Exclude<ReserveAnswer, { outcome: "ok" | "renewal_due" }>, input: { accountId: string; pool: PoolName }): Failure {
  switch (answer.outcome) {
    case "insufficient_credits": {
      const exhausted: ExhaustedChoices = {
        onExhausted: answer.on_exhausted,
        overageOffered: answer.overage_offered,
        overageCapReached: answer.overage_cap_reached,
        overageRateCentsPerCredit: Number(answer.overage_rate_cents_per_credit),
      };
      const amounts = { availableMillicredits: answer.available_mc, costMillicredits: answer.cost_mc };
      return fail("insufficient_credits", exhaustedMessage({ ...amounts, exhausted }), { ...amounts, exhausted });
    }
    case "member_cap_reached":
      return fail("member_cap_reached", `member has used ${answer.used_mc} of a ${answer.cap_mc} millicredit monthly cap; this costs ${answer.cost_mc}`, {
        costMillicredits: answer.cost_mc,
      });
    case "idempotency_conflict":
      return fail("idempotency_conflict", `idempotency key already used by a different request (hold ${answer.hold_id})`);
    case "account_not_found":
      return fail("account_not_found", `no ${input.pool} credit account for ${input.accountId}`);
    case "invalid_amount":
      return fail("invalid_argument", "amount must be positive");
    default:
      return unknownOutcome("billing_reserve", answer);
  }
}

/** A settlement's answer as the caller sees it: the amounts, or one failure reason per outcome. */
export function settleOutcome(answer: SettleAnswer, holdId: string): Outcome<SettleResult> {
  switch (answer.outcome) {
    case "ok":
      return {
        ok: true,
        capturedMillicredits: answer.captured_mc,
        overageMillicredits: answer.overage_mc,
        returnedMillicredits: answer.returned_mc,
        availableMillicredits: answer.available_mc,
        replayed: answer.replayed,
      };
    case "hold_not_found":
      return fail("hold_not_found", `no hold ${holdId}`);
    case "hold_expired":
      return fail("hold_expired", `hold ${holdId} passed its deadline and was released`);
    case "hold_already_settled":
      return fail("hold_already_settled", `hold ${holdId} is already ${answer.status}`);
    case "capture_exceeds_hold":
      return fail("capture_exceeds_hold", `capture of ${answer.cost_mc} exceeds the ${answer.held_mc} millicredits held`, { costMillicredits: answer.cost_mc });
    default:
      return unknownOutcome("billing_settle", answer);
  }
}

export class HoldStore {
  readonly #db: BillingExecutor;

  constructor(db: BillingExecutor) {
    this.#db = db;
  }

  /** One call: locks the pool, replays or refuses or reserves. A fresh hold id per call, so a retry after renewal_due is a new attempt. */
  async reserve(call: ReserveCall): Promise<ReserveAnswer> {
    const { rows } = await sql<{ answer: ReserveAnswer }>`select billing_reserve(${call.accountId}, ${call.pool},
          ${call.amountMillicredits}::bigint, ${call.idempotencyKey}, ${call.requestHash}, ${randomUUID()}, ${call.ttlSeconds}::integer,
          ${call.now.toISOString()}::timestamptz, ${call.apiKeyId ?? ""}, ${call.memberId ?? ""}, ${call.description ?? ""}${versionArgument(call.priceBookVersion)}) as answer`.execute(this.#db);
    return onlyRow(rows, "billing_reserve").answer;
  }

  async settle(call: SettleCall): Promise<SettleAnswer> {
    const { rows } = await sql<{ answer: SettleAnswer }>`select billing_settle(${call.holdId}, ${call.action}, ${call.amountMillicredits}::bigint,
        ${call.now.toISOString()}::timestamptz, ${call.reason}, ${call.emitEvents}) as answer`.execute(this.#db);
    return onlyRow(rows, "billing_settle").answer;
  }

  /** The status of a hold that exists (a replayed reserve's hold). */
  async status(holdId: string): Promise<HoldStatus> {
    return (await this.#db.selectFrom("billing_holds").select("status").where("id", "=", holdId).executeTakeFirstOrThrow()).status;
  }

  /** Open holds past their deadline, soonest first. */
  async countOpen(): Promise<number> {
    const row = await this.#db.selectFrom("billing_holds").select((eb) => eb.fn.countAll<string>().as("count")).where("status", "=", "open").executeTakeFirst();
    return Number(row?.count ?? 0);
  }

  async dueForExpiry(now: Date, batchSize: number): Promise<string[]> {
    const rows = await this.#db
      .selectFrom("billing_holds")
      .select("id")
      .where("status", "=", "open")
      .where("expires_at", "<=", now)
      .orderBy("expires_at")
      .limit(batchSize)
      .execute();
    return rows.map((row) => row.id);
  }

  /**
   * Locks the hold's credit account (ordering this with the sweeper and settlements) and reads
   * the hold's deadline afresh under the lock; undefined when there is no such hold. Needs a
   * transaction.
   */
  async lockDeadline(holdId: string): Promise<HoldDeadline | undefined> {
    const hold = await this.#db.selectFrom("billing_holds").select(["credit_account_id"]).where("id", "=", holdId).executeTakeFirst();
    if (!hold) return undefined;
    await this.#db.selectFrom("billing_credit_accounts").select("id").where("id", "=", hold.credit_account_id).forUpdate().execute();
    const current = await this.#db.selectFrom("billing_holds").select(["status", "expires_at", "created_at"]).where("id", "=", holdId).executeTakeFirstOrThrow();
    return { id: holdId, status: current.status, expiresAt: toDate(current.expires_at), createdAt: toDate(current.created_at) };
  }

  async moveDeadline(holdId: string, expiresAt: Date): Promise<void> {
    await this.#db.updateTable("billing_holds").set({ expires_at: expiresAt }).where("id", "=", holdId).execute();
  }
}

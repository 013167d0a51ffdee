import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { EventBus } from "../common/ports/event-bus.ts";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { Pool } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { CreditsCapturedSchema, CreditsExhaustedSchema, CreditsLowSchema, GrantExpiredSchema } from "../common/gen/cutline/billing/v1/events_pb.ts";
import { startPeriodicTask, type PeriodicTask } from "../common/periodic-task.ts";
import { systemClock, type Clock } from "./domain/clock.ts";
import { createBillingHandlers } from "./handlers/billing.handlers.ts";
import { checkLedgerInvariants, type InvariantViolation } from "./store/invariants.ts";
import type { LedgerLimits } from "./domain/limits.ts";
import { LedgerStore } from "./store/ledger.store.ts";
import type { OutboxEvent } from "./store/outbox.store.ts";
import { billingMigrationSet } from "./store/migrations.ts";
import { migrateOrCheck } from "../common/migrate.ts";
import { setOpenHolds } from "./billing.metrics.ts";
import { readCatalogueFile, SHIPPED_PLANS_FILE, syncCatalogue } from "./store/catalogue.store.ts";
import type { Catalogue } from "./domain/catalogue.ts";
import type { BillingSchema } from "./store/schema.ts";

export { LedgerStore } from "./store/ledger.store.ts";
export { ManualClock, systemClock, type Clock } from "./domain/clock.ts";
export { priceOf, DEFAULT_PRICE_BOOK, type PriceBook } from "./domain/price-book.ts";
export { CODE_BY_REASON, REASON_HEADER } from "./handlers/billing.handlers.ts";
export type { BillingSchema } from "./store/schema.ts";
export { CatalogueError, type Catalogue } from "./domain/catalogue.ts";
export { readCatalogueFile, SHIPPED_PLANS_FILE } from "./store/catalogue.store.ts";

export interface BillingOptions {
  /** Run pending migrations at start (MIGRATE_ON_START); false only checks that none is missing. @default true */
  migrateOnStart?: boolean;
  /** Any Kysely over Postgres or PGlite; billing's tables are all prefixed `billing_`. */
  db: Kysely<unknown>;
  /** @default systemClock */
  clock?: Clock;
  /** Where billing events go; without one, no events are recorded. */
  eventBus?: EventBus;
  log: Logger;
  limits?: Partial<LedgerLimits>;
  /** Sweeper period (hold expiry, bucket expiry, renewals, event relay). @default 5_000 ms */
  sweepIntervalMs?: number;
  /** Shown to callers who run out of credits. */
  topUpHint?: string;
  /** The plans file (BILLING_PLANS_FILE), read and checked when billing is created. @default SHIPPED_PLANS_FILE */
  plansFile?: string;
  /** Where a caller whose credits ran out upgrades. */
  upgradeHint?: string;
}

export interface Sweeper {
  start(): void;
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
  /** One full pass now; tests and the lead's admin endpoints call it directly. */
  sweepOnce(): Promise<{ holdsExpired: number; bucketsExpired: number; accountsRenewed: number; eventsPublished: number }>;
}

export interface Billing {
  handlers: ServiceImpl<typeof BillingService>;
  ledger: LedgerStore;
  sweeper: Sweeper;
  /** The plans file as read at creation. */
  catalogue: Catalogue;
  /**
   * Applies billing's migrations (table `billing_migrations`), then the current SQL function
   * definitions (with `migrateOnStart: false`, only checks that none is missing), then writes the
   * plans file into the catalogue tables; call once before serving.
   */
  migrate(): Promise<void>;
  checkInvariants(): Promise<InvariantViolation[]>;
}

const poolEnum = (pool: unknown): Pool => (pool === "web" ? Pool.WEB : Pool.API);
const bigintOf = (value: unknown): bigint => BigInt(Number(value ?? 0));
const dateOf = (value: unknown) => timestampFromDate(new Date(String(value)));

function encode<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Uint8Array {
  return toBinary(schema, create(schema, init));
}

/** An event's id on the bus and in its payload: its outbox row's, the same on every relay of it. */
export function billingEventId(event: Pick<OutboxEvent, "id">): string {
  return `billing-outbox-${event.id}`;
}

/** Turns an outbox row (JSON written by the ledger functions) into the protobuf payload of its subject. */
export function encodeBillingEvent(event: OutboxEvent): Uint8Array {
  const p = event.payload;
  switch (event.subject) {
    case "credits.captured":
      return encode(CreditsCapturedSchema, {
        accountId: String(p.account_id),
        pool: poolEnum(p.pool),
        holdId: String(p.hold_id),
        capturedMillicredits: bigintOf(p.captured_mc),
        overageMillicredits: bigintOf(p.overage_mc),
        availableMillicredits: bigintOf(p.available_mc),
        memberId: String(p.member_id ?? ""),
        apiKeyId: String(p.api_key_id ?? ""),
        occurredAt: dateOf(p.occurred_at),
      });
    case "credits.low":
      return encode(CreditsLowSchema, {
        accountId: String(p.account_id),
        pool: poolEnum(p.pool),
        availableMillicredits: bigintOf(p.available_mc),
        thresholdMillicredits: bigintOf(p.threshold_mc),
        occurredAt: dateOf(p.occurred_at),
        eventId: billingEventId(event),
      });
    case "credits.exhausted":
      return encode(CreditsExhaustedSchema, { accountId: String(p.account_id), pool: poolEnum(p.pool), occurredAt: dateOf(p.occurred_at), eventId: billingEventId(event) });
    case "grant.expired":
      return encode(GrantExpiredSchema, {
        accountId: String(p.account_id),
        pool: poolEnum(p.pool),
        bucketId: String(p.bucket_id),
        kind: String(p.kind),
        expiredMillicredits: bigintOf(p.expired_mc),
        occurredAt: dateOf(p.occurred_at),
      });
    default:
      throw new Error(`unknown billing event subject ${event.subject}`);
  }
}

/** Builds the billing service: handlers for the router, the ledger, and the sweeper the caller starts. */
export async function createBilling(options: BillingOptions): Promise<Billing> {
  const db = options.db as Kysely<BillingSchema>;
  const clock = options.clock ?? systemClock;
  const log = options.log.child({ service: "billing" });
  const eventBus = options.eventBus;
  const ledger = new LedgerStore({ db, clock, limits: options.limits, emitEvents: eventBus !== undefined });
  const sweepIntervalMs = options.sweepIntervalMs ?? 5_000;
  // Read and checked before anything else: a bad plans file stops billing at start, naming the field.
  const plansFile = options.plansFile || SHIPPED_PLANS_FILE;
  const catalogue = readCatalogueFile(plansFile);

  let task: PeriodicTask | undefined;

  async function sweepOnce() {
    // Renew first so a cycle's new allocation exists before its predecessor is expired.
    const accountsRenewed = await ledger.renewDue();
    const holdsExpired = await ledger.expireDueHolds();
    const bucketsExpired = await ledger.expireDueBuckets();
    // Counted on the sweeper's period rather than per scrape: one indexed count, whoever scrapes.
    setOpenHolds(await ledger.openHolds());
    let eventsPublished = 0;
    if (eventBus) {
      for (;;) {
        const published = await ledger.relayOutbox((event) => eventBus.publish(event.subject, encodeBillingEvent(event), { id: billingEventId(event) }));
        eventsPublished += published;
        if (published === 0) break;
      }
    }
    return { holdsExpired, bucketsExpired, accountsRenewed, eventsPublished };
  }

  const sweeper: Sweeper = {
    start() {
      if (task) return;
      // A failed sweep (database down) is logged and retried next period, never a crash.
      task = startPeriodicTask({
        name: "billing sweep",
        intervalMs: sweepIntervalMs,
        log,
        run: async () => {
          const counts = await sweepOnce();
          if (counts.holdsExpired + counts.bucketsExpired + counts.accountsRenewed > 0) log.info(counts, "billing sweep");
        },
      });
    },
    async stop() {
      await task?.stop();
      task = undefined;
    },
    sweepOnce,
  };

  return {
    handlers: createBillingHandlers({ ledger, log, topUpHint: options.topUpHint, upgradeHint: options.upgradeHint }),
    ledger,
    sweeper,
    catalogue,
    async migrate() {
      await migrateOrCheck(options.db, billingMigrationSet, options.migrateOnStart ?? true);
      const synced = await syncCatalogue(db, catalogue, plansFile, clock.now());
      if (synced === "stale") log.warn({ version: catalogue.version, plansFile }, "the plans file's version was replaced by a later one; the catalogue is left as it is");
    },
    checkInvariants: () => checkLedgerInvariants(db),
  };
}

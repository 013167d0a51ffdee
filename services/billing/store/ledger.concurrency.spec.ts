// Many clients reserving on one account at once never overdraw it: the sum of what succeeded
// never exceeds what was granted, retries with the same key never charge twice, and the whole
// ledger still balances. On Postgres the clients use separate connections; on PGlite they
// interleave on one connection, which still exercises the async paths.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createBillingFixture, type BillingFixture } from "../billing.testing.ts";

const CLIENTS = 16;
const ATTEMPTS_PER_CLIENT = Number(process.env.BILLING_CONCURRENCY_ATTEMPTS ?? 40);

describe("concurrent reserves on one account", () => {
  let billing: BillingFixture;
  before(async () => {
    billing = await createBillingFixture({ poolSizeMax: CLIENTS });
  });
  after(async () => {
    await billing?.dispose();
  });

  it("never overdraws and never double-charges a retried key", async () => {
    const { ledger } = billing;
    assert.ok((await ledger.createAccount({ accountId: "hot", planCode: "starter", grantTrial: false })).ok);
    const grantedMillicredits = 50_000;
    let reservedMillicredits = 0;
    let capturedMillicredits = 0;
    let refused = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        for (let attempt = 0; attempt < ATTEMPTS_PER_CLIENT; attempt += 1) {
          const amount = 500 + ((client * 7919 + attempt * 104_729) % 1_500);
          const key = `c${client}-${attempt}`;
          // Each request is sent twice at once, as a client retrying on a timeout would.
          const [first, retry] = await Promise.all([
            ledger.reserve({ accountId: "hot", pool: "api", amountMillicredits: amount, idempotencyKey: key }),
            ledger.reserve({ accountId: "hot", pool: "api", amountMillicredits: amount, idempotencyKey: key }),
          ]);
          // A refusal leaves no trace, so its twin may succeed once a capture returned credits.
          for (const outcome of [first, retry]) if (!outcome.ok) assert.equal(outcome.reason, "insufficient_credits");
          const holds = new Set([first, retry].flatMap((outcome) => (outcome.ok ? [outcome.holdId] : [])));
          assert.ok(holds.size <= 1, "a replayed key returns the first hold");
          const [holdId] = holds;
          if (holdId === undefined) {
            refused += 1;
            continue;
          }
          reservedMillicredits += amount;
          if (attempt % 3 === 0) {
            assert.ok((await ledger.release(holdId, "server failure")).ok);
            reservedMillicredits -= amount;
          } else {
            const charge = attempt % 3 === 1 ? amount : Math.floor(amount / 2);
            assert.ok((await ledger.capture(holdId, charge)).ok);
            reservedMillicredits -= amount;
            capturedMillicredits += charge;
          }
        }
      }),
    );
    assert.ok(refused > 0, "the test should drive the account to empty");
    assert.equal(reservedMillicredits, 0);
    assert.ok(capturedMillicredits <= grantedMillicredits);
    const balance = await ledger.balance("hot", "api");
    assert.ok(balance.ok);
    assert.equal(balance.availableMillicredits, grantedMillicredits - capturedMillicredits);
    assert.equal(balance.heldMillicredits, 0);
    await billing.assertHealthy();
  });
});

// The RequestRates contract: the in-process adapter and the Postgres store both run it
// (request-rates.spec.ts), so single-node mode cannot drift from the replicas' shared limit.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import type { RequestRates } from "./request-rates.ts";

export function describeRequestRatesContract(name: string, open: () => RequestRates): void {
  describe(`RequestRates contract: ${name}`, () => {
    test("a minute's worth comes in a burst, then a refusal names the limit and when to retry", async () => {
      const rates = open();
      const account = randomUUID();
      const remaining: number[] = [];
      for (let index = 0; index < 5; index++) {
        const { outcome, state } = await rates.take(account, 5);
        assert.equal(outcome.ok, true);
        assert.equal(state?.limit, 5);
        remaining.push(state!.remaining);
      }
      assert.deepEqual(remaining, [4, 3, 2, 1, 0]);
      const refused = await rates.take(account, 5);
      assert.equal(refused.outcome.ok, false);
      if (refused.outcome.ok) return;
      assert.equal(refused.outcome.limit, "requests_per_minute");
      // One token in 12 s at 5 per minute.
      assert.ok(refused.outcome.retryAfterMs > 11_000 && refused.outcome.retryAfterMs <= 12_000, String(refused.outcome.retryAfterMs));
      assert.match(refused.outcome.message, /allows 5 requests per minute; retry in 12 s/);
      assert.equal(refused.state?.remaining, 0);
      // The bucket is full again within a minute of the burst (X-RateLimit-Reset, Unix seconds).
      const nowSeconds = Date.now() / 1000;
      assert.ok(refused.state!.resetAtSeconds > nowSeconds + 58 && refused.state!.resetAtSeconds <= nowSeconds + 61, `${refused.state!.resetAtSeconds} vs ${nowSeconds}`);
    });

    test("tokens refill evenly: at 600 per minute, one is back within 150 ms", async () => {
      const rates = open();
      const account = randomUUID();
      // Taken until refused: the bucket refills while it is being emptied (10 a second).
      let refused = false;
      for (let index = 0; index < 1200 && !refused; index++) refused = !(await rates.take(account, 600)).outcome.ok;
      assert.equal(refused, true);
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal((await rates.take(account, 600)).outcome.ok, true);
    });

    test("accounts have their own buckets, and a plan without a limit (0) admits all with no headers", async () => {
      const rates = open();
      const [first, second] = [randomUUID(), randomUUID()];
      await rates.take(first, 1);
      assert.equal((await rates.take(first, 1)).outcome.ok, false);
      assert.equal((await rates.take(second, 1)).outcome.ok, true);
      assert.deepEqual(await rates.take(first, 0), { outcome: { ok: true }, state: undefined });
    });

    test("a lower plan limit caps a fuller bucket at once", async () => {
      const rates = open();
      const account = randomUUID();
      await rates.take(account, 100);
      const { outcome, state } = await rates.take(account, 2);
      assert.equal(outcome.ok, true);
      assert.equal(state?.remaining, 1);
    });
  });
}

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConcurrencyLimiter, RequestRateLimiter } from "./rate-limits.ts";

test("a minute's requests may burst, then they refill evenly and the refusal says when", () => {
  const limiter = new RequestRateLimiter();
  for (let index = 0; index < 10; index++) assert.deepEqual(limiter.take("a", 10, 0), { ok: true });
  const refused = limiter.take("a", 10, 0);
  assert.equal(refused.ok, false);
  if (!refused.ok) {
    assert.equal(refused.limit, "requests_per_minute");
    assert.equal(refused.retryAfterMs, 6000); // one request per 6 s at 10 per minute
    assert.match(refused.message, /10 requests per minute/);
  }
  assert.equal(limiter.take("a", 10, 5_999).ok, false);
  assert.equal(limiter.take("a", 10, 6_000).ok, true);
  assert.equal(limiter.take("b", 10, 6_000).ok, true, "accounts do not share a bucket");
  assert.equal(limiter.take("c", 0, 0).ok, true, "0 means no limit");
});

test("only the most recently used accounts are tracked", () => {
  const limiter = new RequestRateLimiter({ accountsMax: 2 });
  limiter.take("a", 1, 0);
  limiter.take("b", 1, 0);
  limiter.take("c", 1, 0); // forgets a, which would have refilled by its next request anyway
  assert.equal(limiter.take("a", 1, 0).ok, true);
  assert.equal(limiter.take("c", 1, 0).ok, false);
});

test("concurrency is counted per account and released exactly once", () => {
  const limiter = new ConcurrencyLimiter();
  const first = limiter.acquire("a", 2);
  const second = limiter.acquire("a", 2);
  assert.ok(first.ok && second.ok);
  const third = limiter.acquire("a", 2);
  assert.equal(third.ok, false);
  if (!third.ok) assert.match(third.message, /2 concurrent requests/);
  assert.equal(limiter.acquire("b", 2).ok, true);
  if (first.ok) {
    first.release();
    first.release();
  }
  assert.equal(limiter.inFlight("a"), 1);
  assert.equal(limiter.acquire("a", 2).ok, true);
});

test("each limiter names its own limit in refusals", () => {
  const reads = new RequestRateLimiter({ limit: "read_requests_per_minute", message: (perMinute, seconds) => `${perMinute} reads per minute; retry in ${seconds} s` });
  assert.equal(reads.take("a", 1, 0).ok, true);
  const refused = reads.take("a", 1, 0);
  assert.deepEqual(refused, { ok: false, limit: "read_requests_per_minute", retryAfterMs: 60_000, message: "1 reads per minute; retry in 60 s" });
  const watches = new ConcurrencyLimiter({ limit: "watch_streams", message: (max) => `${max} open watches`, retryAfterMs: 5000 });
  assert.equal(watches.acquire("a", 1).ok, true);
  assert.deepEqual(watches.acquire("a", 1), { ok: false, limit: "watch_streams", retryAfterMs: 5000, message: "1 open watches" });
});

test("state reports what is left and when the bucket is full again, without taking", () => {
  const limiter = new RequestRateLimiter();
  assert.equal(limiter.state("a", 0, 0), undefined, "no limit, no state");
  assert.deepEqual(limiter.state("a", 60, 0), { limit: 60, remaining: 60, resetAtSeconds: 0 });
  for (let index = 0; index < 3; index++) limiter.take("a", 60, 0);
  assert.deepEqual(limiter.state("a", 60, 0), { limit: 60, remaining: 57, resetAtSeconds: 3 });
  assert.deepEqual(limiter.state("a", 60, 1500), { limit: 60, remaining: 58, resetAtSeconds: 3 });
});

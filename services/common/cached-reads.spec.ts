import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CachedReads } from "./cached-reads.ts";

/** A read that settles when told, counting how often it was made. */
function controlled() {
  let calls = 0;
  let settle: { resolve: (value: string) => void; reject: (error: Error) => void } | undefined;
  const call = () => {
    calls += 1;
    return new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  };
  return { call, calls: () => calls, settle: () => settle! };
}

describe("CachedReads", () => {
  it("makes one read for concurrent callers of a key, and every caller gets its value", async () => {
    const reads = new CachedReads<string, string>({ ttlMs: 0 });
    const read = controlled();
    const answers = Promise.all([reads.get("a", read.call), reads.get("a", read.call), reads.get("a", read.call)]);
    assert.equal(read.calls(), 1);
    read.settle().resolve("row");
    assert.deepEqual(await answers, ["row", "row", "row"]);
  });

  it("at ttlMs 0 keeps nothing once the read settles: the next caller reads again", async () => {
    const reads = new CachedReads<string, string>({ ttlMs: 0 });
    const read = controlled();
    const first = reads.get("a", read.call);
    read.settle().resolve("old");
    assert.equal(await first, "old");
    assert.equal(reads.pendingReads, 0);
    const second = reads.get("a", read.call);
    assert.equal(read.calls(), 2);
    read.settle().resolve("new");
    assert.equal(await second, "new");
  });

  it("keeps a value for ttlMs, then reads again", async () => {
    let now = 1_000;
    const reads = new CachedReads<string, string>({ ttlMs: 2000, now: () => now });
    const read = controlled();
    const first = reads.get("a", read.call);
    read.settle().resolve("v1");
    assert.equal(await first, "v1");
    now += 1999;
    assert.equal(await reads.get("a", read.call), "v1");
    assert.equal(read.calls(), 1);
    now += 1;
    const again = reads.get("a", read.call);
    assert.equal(read.calls(), 2);
    read.settle().resolve("v2");
    assert.equal(await again, "v2");
  });

  it("forget drops a kept value at once", async () => {
    const reads = new CachedReads<string, string>({ ttlMs: 60_000 });
    const read = controlled();
    const first = reads.get("a", read.call);
    read.settle().resolve("before the change");
    await first;
    reads.forget("a");
    const after = reads.get("a", read.call);
    assert.equal(read.calls(), 2);
    read.settle().resolve("after the change");
    assert.equal(await after, "after the change");
  });

  it("a read under way when its key is forgotten is neither shared after it nor kept", async () => {
    const reads = new CachedReads<string, string>({ ttlMs: 60_000 });
    const older = controlled();
    const newer = controlled();
    const before = reads.get("a", older.call);
    const olderSettle = older.settle();
    reads.forget("a");
    // Asked after the change: not given the read that began before it.
    const after = reads.get("a", newer.call);
    assert.equal(newer.calls(), 1);
    newer.settle().resolve("new");
    assert.equal(await after, "new");
    // The older read lands last: its caller gets it, but it does not replace the newer value.
    olderSettle.resolve("old");
    assert.equal(await before, "old");
    assert.equal(await reads.get("a", newer.call), "new");
    assert.equal(newer.calls(), 1);
  });

  it("hands a failure to every waiting caller and keeps nothing: the next caller reads afresh", async () => {
    const reads = new CachedReads<string, string>({ ttlMs: 60_000 });
    const read = controlled();
    const waiting = [reads.get("a", read.call), reads.get("a", read.call)];
    read.settle().reject(new Error("connection reset"));
    for (const answer of waiting) await assert.rejects(answer, /connection reset/);
    const retry = reads.get("a", read.call);
    assert.equal(read.calls(), 2);
    read.settle().resolve("row");
    assert.equal(await retry, "row");
  });

  it("keeps only what `keep` accepts, and clear forgets every key and every read under way", async () => {
    const reads = new CachedReads<string, string | undefined>({ ttlMs: 60_000, keep: (value) => value !== undefined });
    let calls = 0;
    const read = (value: string | undefined) => async () => {
      calls += 1;
      return value;
    };
    assert.equal(await reads.get("missing", read(undefined)), undefined);
    assert.equal(await reads.get("missing", read("made since")), "made since", "a miss is read again");
    assert.equal(await reads.get("missing", read("later")), "made since");
    const underWay = controlled();
    const before = reads.get("b", underWay.call);
    const settle = underWay.settle();
    reads.clear();
    assert.equal(await reads.get("missing", read("after clear")), "after clear");
    settle.resolve("old");
    assert.equal(await before, "old");
    assert.equal(await reads.get("b", read("fresh")), "fresh", "the read under way at the clear was not kept");
    assert.equal(calls, 4);
  });

  it("reads separately for different keys, and holds at most entriesMax values", async () => {
    const reads = new CachedReads<string, string>({ ttlMs: 60_000, entriesMax: 2 });
    let calls = 0;
    const read = (value: string) => async () => {
      calls += 1;
      return value;
    };
    assert.deepEqual(await Promise.all([reads.get("a", read("A")), reads.get("b", read("B"))]), ["A", "B"]);
    assert.equal(await reads.get("a", read("A again")), "A");
    assert.equal(calls, 2);
    // A third key with every entry fresh starts over: a and b are read again.
    assert.equal(await reads.get("c", read("C")), "C");
    assert.equal(await reads.get("a", read("A again")), "A again");
    assert.equal(calls, 4);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SharedCalls } from "./shared-calls.ts";

/** A call that settles when told, counting how often it was made. */
function controlled() {
  let calls = 0;
  let settle: { resolve: (value: string) => void; reject: (error: Error) => void } | undefined;
  const call = () => {
    calls += 1;
    return new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  };
  return { call, calls: () => calls, settle: () => settle! };
}

describe("SharedCalls", () => {
  it("makes one call for concurrent callers of a key, and every caller gets its value", async () => {
    const shared = new SharedCalls<string, string>();
    const read = controlled();
    const answers = Promise.all([shared.run("a", read.call), shared.run("a", read.call), shared.run("a", read.call)]);
    assert.equal(read.calls(), 1);
    read.settle().resolve("row");
    assert.deepEqual(await answers, ["row", "row", "row"]);
  });

  it("keeps nothing once the call settles: the next caller calls again", async () => {
    const shared = new SharedCalls<string, string>();
    const read = controlled();
    const first = shared.run("a", read.call);
    read.settle().resolve("old");
    assert.equal(await first, "old");
    assert.equal(shared.size, 0);
    const second = shared.run("a", read.call);
    assert.equal(read.calls(), 2);
    read.settle().resolve("new");
    assert.equal(await second, "new");
  });

  it("hands a failure to every waiting caller, then calls afresh", async () => {
    const shared = new SharedCalls<string, string>();
    const read = controlled();
    const waiting = [shared.run("a", read.call), shared.run("a", read.call)];
    read.settle().reject(new Error("connection reset"));
    for (const answer of waiting) await assert.rejects(answer, /connection reset/);
    const retry = shared.run("a", read.call);
    assert.equal(read.calls(), 2);
    read.settle().resolve("row");
    assert.equal(await retry, "row");
  });

  it("calls separately for different keys", async () => {
    const shared = new SharedCalls<string, string>();
    const a = controlled();
    const b = controlled();
    const answers = Promise.all([shared.run("a", a.call), shared.run("b", b.call)]);
    assert.deepEqual([a.calls(), b.calls()], [1, 1]);
    a.settle().resolve("A");
    b.settle().resolve("B");
    assert.deepEqual(await answers, ["A", "B"]);
  });
});

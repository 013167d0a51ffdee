import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { CallGate } from "./call-gate.ts";

describe("CallGate", () => {
  it("keeps at most its permits in flight, and one fewer after a concurrency refusal", async () => {
    const gate = new CallGate(3);
    let inFlight = 0;
    let most = 0;
    const call = () =>
      gate.run(async () => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await sleep(5);
        inFlight -= 1;
      });
    await Promise.all(Array.from({ length: 9 }, call));
    assert.equal(most, 3);
    // A refusal seen while two others were in flight: the server allows two.
    const holding = [gate.run(() => sleep(20)), gate.run(() => sleep(20))];
    gate.fewerAtOnce();
    await Promise.all(holding);
    assert.equal(gate.permits, 2);
    most = 0;
    await Promise.all(Array.from({ length: 6 }, call));
    assert.equal(most, 2);
    gate.fewerAtOnce();
    gate.fewerAtOnce();
    assert.equal(gate.permits, 1, "never below one");
  });

  it("starts no call during a pause", async () => {
    const gate = new CallGate(2);
    gate.pause(50);
    const started = Date.now();
    await gate.run(async () => undefined);
    assert.ok(Date.now() - started >= 45, `started after ${Date.now() - started} ms`);
  });
});

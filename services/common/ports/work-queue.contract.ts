// The work queue contract: every adapter runs this suite (see work-queue.spec.ts).
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { deadLetterCount, eventually, sleep, type ContractRun } from "./contract-support.ts";
import { QueueFullError, type WorkMessage, type WorkQueue, type WorkQueueLimits } from "./work-queue.ts";

export interface WorkQueueFixture {
  readonly workQueue: WorkQueue;
  /** Closes the queue and deletes whatever it created. */
  cleanUp(): Promise<void>;
}

export type WorkQueueFactory = (limits: WorkQueueLimits) => Promise<WorkQueueFixture>;

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** Enqueues `id`; false (not thrown) while the queue is full, for polling until room frees. */
async function enqueueUnlessFull(queue: WorkQueue, id: string): Promise<boolean> {
  try {
    await queue.enqueue(bytes(id), { id });
    return true;
  } catch (error) {
    if (error instanceof QueueFullError) return false;
    throw error;
  }
}

export function describeWorkQueueContract(name: string, factory: WorkQueueFactory, run: ContractRun = {}): void {
  describe(`WorkQueue contract: ${name}`, { skip: run.skip }, () => {
    const fixtures: WorkQueueFixture[] = [];
    const open = async (limits: WorkQueueLimits = {}) => {
      const fixture = await factory(limits);
      fixtures.push(fixture);
      return fixture.workQueue;
    };
    after(async () => {
      await Promise.all(fixtures.map((fixture) => fixture.cleanUp()));
    });

    test("headers given at enqueue reach the consumer; a message without them has none", async () => {
      const queue = await open();
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      await queue.enqueue(bytes("a"), { id: "a", headers: { traceparent } });
      await queue.enqueue(bytes("b"), { id: "b" });
      const seen = new Map<string, Readonly<Record<string, string>> | undefined>();
      const subscription = queue.consume(async (message) => {
        seen.set(message.id, message.headers);
        await message.ack();
      });
      await eventually("both messages", () => seen.size === 2);
      await subscription.drain();
      assert.deepEqual(seen.get("a"), { traceparent });
      assert.equal(seen.get("b"), undefined);
    });

    test("delivers enqueued messages once each and forgets them when acked", async () => {
      const queue = await open();
      await queue.enqueue(bytes("a"), { id: "a" });
      await queue.enqueue(bytes("b"), { id: "b", priority: "high" });
      assert.equal(await queue.depth(), 2);
      const seen: { id: string; payload: string; priority: string; deliveryCount: number }[] = [];
      const subscription = queue.consume(async (message) => {
        seen.push({ id: message.id, payload: text(message.payload), priority: message.priority, deliveryCount: message.deliveryCount });
        await message.ack();
      });
      await eventually("both messages", () => seen.length === 2);
      await sleep(300);
      await subscription.drain();
      assert.deepEqual(
        seen.sort((left, right) => left.id.localeCompare(right.id)),
        [
          { id: "a", payload: "a", priority: "normal", deliveryCount: 1 },
          { id: "b", payload: "b", priority: "high", deliveryCount: 1 },
        ],
      );
      assert.equal(await queue.depth(), 0);
    });

    test("drops a second enqueue with the same id", async () => {
      const queue = await open();
      await queue.enqueue(bytes("first"), { id: "job-1" });
      await queue.enqueue(bytes("second"), { id: "job-1" });
      assert.equal(await queue.depth(), 1);
      const seen: string[] = [];
      const subscription = queue.consume(async (message) => {
        seen.push(text(message.payload));
        await message.ack();
      });
      await eventually("the message", () => seen.length === 1);
      await sleep(300);
      await subscription.drain();
      assert.deepEqual(seen, ["first"]);
    });

    test("drains the high lane before the normal lane", async () => {
      const queue = await open();
      await queue.enqueue(bytes("n1"), { id: "n1" });
      await queue.enqueue(bytes("n2"), { id: "n2", priority: "normal" });
      await queue.enqueue(bytes("h1"), { id: "h1", priority: "high" });
      await queue.enqueue(bytes("h2"), { id: "h2", priority: "high" });
      const order: string[] = [];
      const subscription = queue.consume(async (message) => {
        order.push(message.id);
        // A high message arriving while normal work is waiting still goes first.
        if (message.id === "h1") await queue.enqueue(bytes("h3"), { id: "h3", priority: "high" });
        await message.ack();
      });
      await eventually("all five", () => order.length === 5);
      await subscription.drain();
      assert.deepEqual(order, ["h1", "h2", "h3", "n1", "n2"]);
    });

    test("nak(delayMs) redelivers after the delay", async () => {
      const queue = await open();
      await queue.enqueue(bytes("x"), { id: "x" });
      const deliveries: { at: number; deliveryCount: number }[] = [];
      const subscription = queue.consume(async (message) => {
        deliveries.push({ at: Date.now(), deliveryCount: message.deliveryCount });
        if (message.deliveryCount === 1) await message.nak(400);
        else await message.ack();
      });
      await eventually("the redelivery", () => deliveries.length === 2);
      await subscription.drain();
      assert.deepEqual(deliveries.map((delivery) => delivery.deliveryCount), [1, 2]);
      const gap = deliveries[1]!.at - deliveries[0]!.at;
      assert.ok(gap >= 350, `redelivered after ${gap} ms, expected about 400 ms`);
    });

    test("a handler that throws gets its message again", async () => {
      const queue = await open();
      await queue.enqueue(bytes("x"), { id: "x" });
      const counts: number[] = [];
      const subscription = queue.consume(async (message) => {
        counts.push(message.deliveryCount);
        if (message.deliveryCount === 1) throw new Error("transient failure (expected by the test)");
        await message.ack();
      });
      await eventually("the redelivery", () => counts.length === 2);
      await subscription.drain();
      assert.deepEqual(counts, [1, 2]);
    });

    test("term never redelivers and frees the message's place", async () => {
      const queue = await open({ queueLengthMax: 1 });
      await queue.enqueue(bytes("x"), { id: "x" });
      const seen: string[] = [];
      const subscription = queue.consume(async (message) => {
        seen.push(message.id);
        if (message.id === "x") await message.term("unsupported format");
        else await message.ack();
      });
      await eventually("the delivery", () => seen.length === 1);
      await sleep(500);
      assert.deepEqual(seen, ["x"]);
      await eventually("room in the queue", () => enqueueUnlessFull(queue, "y"));
      await eventually("the next message", () => seen.length === 2);
      await subscription.drain();
    });

    test("stops delivering after deliveryCountMax and frees the message's place", async () => {
      const queue = await open({ deliveryCountMax: 3, queueLengthMax: 1 });
      await queue.enqueue(bytes("x"), { id: "x" });
      const counts: number[] = [];
      const subscription = queue.consume(async (message) => {
        if (message.id !== "x") return void (await message.ack());
        counts.push(message.deliveryCount);
        await message.nak();
      });
      await eventually("three deliveries", () => counts.length === 3);
      await sleep(500);
      assert.deepEqual(counts, [1, 2, 3]);
      await queue.enqueue(bytes("y"), { id: "y" });
      await subscription.drain();
    });

    test("a message whose last delivery times out is dropped and frees its place", async () => {
      const queue = await open({ deliveryCountMax: 1, ackWaitMs: 1000, queueLengthMax: 1 });
      await queue.enqueue(bytes("x"), { id: "x" });
      const seen: string[] = [];
      const subscription = queue.consume(
        async (message) => {
          seen.push(`${message.id}#${message.deliveryCount}`);
          if (message.id === "x") await sleep(1300);
          else await message.ack();
        },
        { inFlightMax: 2 },
      );
      await eventually("room in the queue", () => enqueueUnlessFull(queue, "y"));
      await eventually("the next message", () => seen.includes("y#1"));
      await subscription.drain();
      assert.deepEqual(seen, ["x#1", "y#1"]);
      const letters = await queue.deadLetters();
      assert.deepEqual(
        letters.map((letter) => [letter.port, letter.id, letter.subject, text(letter.data), letter.reason]),
        [["work-queue", "x", "work.normal", "x", "ack_wait_expired"]],
      );
    });

    test("a message whose deliveries run out is kept as a dead letter, listed and counted; a termed one is not", async () => {
      const queue = await open({ deliveryCountMax: 2 });
      const countedBefore = await deadLetterCount("work-queue", "work.high");
      const startedAt = Date.now();
      await queue.enqueue(bytes("poison"), { id: "poison", priority: "high" });
      await queue.enqueue(bytes("refused"), { id: "refused" });
      await queue.enqueue(bytes("fine"), { id: "fine" });
      const settled: string[] = [];
      const subscription = queue.consume(async (message) => {
        if (message.id === "poison") {
          if (message.deliveryCount === 1) await message.nak();
          else throw new Error("handler failure on the last delivery (expected by the test)");
        } else if (message.id === "refused") await message.term("unsupported format");
        else await message.ack();
        settled.push(`${message.id}#${message.deliveryCount}`);
      });
      await eventually("the dead letter", async () => (await queue.deadLetters()).length === 1);
      await sleep(300);
      await subscription.drain();
      assert.deepEqual(settled.sort(), ["fine#1", "poison#1", "refused#1"]);
      const [letter] = await queue.deadLetters();
      assert.deepEqual(
        { port: letter!.port, id: letter!.id, subject: letter!.subject, data: text(letter!.data), deliveryCount: letter!.deliveryCount, reason: letter!.reason },
        { port: "work-queue", id: "poison", subject: "work.high", data: "poison", deliveryCount: 2, reason: "delivery_count_max" },
      );
      assert.ok(letter!.recordedAt.getTime() >= startedAt - 1000 && letter!.recordedAt.getTime() <= Date.now() + 1000, `recordedAt ${letter!.recordedAt.toISOString()}`);
      assert.equal(await deadLetterCount("work-queue", "work.high"), countedBefore + 1, "cutline_dead_letters_total counts it once");
      assert.equal(await queue.depth(), 0);
      await assert.rejects(queue.deadLetters({ limit: 0 }), /limit must be an integer from 1 to 10000 letters/);
    });

    test("redelivers after ackWaitMs unless the handler reports working()", async () => {
      const queue = await open({ ackWaitMs: 1000 });
      await queue.enqueue(bytes("slow"), { id: "slow" });
      await queue.enqueue(bytes("stuck"), { id: "stuck" });
      const deliveries: string[] = [];
      const subscription = queue.consume(
        async (message) => {
          deliveries.push(`${message.id}#${message.deliveryCount}`);
          if (message.id === "stuck" && message.deliveryCount === 1) {
            await sleep(1600);
            return;
          }
          if (message.id === "slow") {
            for (let tick = 0; tick < 5; tick++) {
              await sleep(300);
              await message.working();
            }
          }
          await message.ack();
        },
        { inFlightMax: 3 },
      );
      await eventually("the stuck message again", () => deliveries.includes("stuck#2"), 5000);
      await sleep(300);
      await subscription.drain();
      assert.deepEqual(deliveries.filter((delivery) => delivery.startsWith("slow")), ["slow#1"]);
    });

    test("never runs more than inFlightMax handlers at once", async () => {
      const queue = await open();
      for (let index = 0; index < 10; index++) await queue.enqueue(bytes(String(index)), { id: `m${index}` });
      let running = 0;
      let runningMax = 0;
      let done = 0;
      const subscription = queue.consume(
        async (message) => {
          running += 1;
          runningMax = Math.max(runningMax, running);
          await sleep(60);
          running -= 1;
          done += 1;
          await message.ack();
        },
        { inFlightMax: 3 },
      );
      await eventually("all ten", () => done === 10);
      await subscription.drain();
      assert.equal(runningMax, 3);
    });

    test("rejects an enqueue past queueLengthMax, naming the limit", async () => {
      const queue = await open({ queueLengthMax: 2 });
      await queue.enqueue(bytes("1"), { id: "1" });
      await queue.enqueue(bytes("2"), { id: "2", priority: "high" });
      await assert.rejects(queue.enqueue(bytes("3"), { id: "3" }), (error: unknown) => {
        assert.ok(error instanceof QueueFullError);
        assert.equal(error.queueLengthMax, 2);
        assert.match(error.message, /queueLengthMax = 2 messages/);
        return true;
      });
      // A retry of a message already stored is not a new message.
      await queue.enqueue(bytes("2"), { id: "2", priority: "high" });
      assert.equal(await queue.depth(), 2);
    });

    test("drain waits for the handlers in flight and takes nothing new", async () => {
      const queue = await open();
      await queue.enqueue(bytes("1"), { id: "1" });
      await queue.enqueue(bytes("2"), { id: "2" });
      let started = 0;
      let finished = 0;
      const subscription = queue.consume(async (message: WorkMessage) => {
        started += 1;
        await sleep(300);
        await message.ack();
        finished += 1;
      });
      await eventually("the first handler", () => started === 1);
      await subscription.drain();
      assert.equal(finished, 1);
      await sleep(200);
      assert.equal(started, 1);
      assert.equal(await queue.depth(), 1);
    });
  });
}

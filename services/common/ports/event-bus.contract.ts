// The event bus contract: every adapter runs this suite (see event-bus.spec.ts).
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { deadLetterCount, eventually, sleep, type ContractRun } from "./contract-support.ts";
import type { BusEvent, EventBus, EventBusLimits } from "./event-bus.ts";

export interface EventBusFixture {
  /**
   * A bus on this fixture's storage; call again after closing the previous one to model a
   * restart (a new process, a new connection) on the same stream or data directory.
   */
  open(): Promise<EventBus>;
  /** Closes what is open and deletes whatever the fixture created. */
  cleanUp(): Promise<void>;
}

export type EventBusFactory = (limits: EventBusLimits) => Promise<EventBusFixture>;

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** Collects the events a subscription receives, as `subject:payload`. */
function collector() {
  const received: string[] = [];
  return {
    received,
    handler: async (event: BusEvent) => {
      received.push(`${event.subject}:${text(event.data)}`);
    },
  };
}

export function describeEventBusContract(name: string, factory: EventBusFactory, run: ContractRun = {}): void {
  describe(`EventBus contract: ${name}`, { skip: run.skip }, () => {
    const fixtures: EventBusFixture[] = [];
    const create = async (limits: EventBusLimits = {}) => {
      const fixture = await factory(limits);
      fixtures.push(fixture);
      return fixture;
    };
    after(async () => {
      await Promise.all(fixtures.map((fixture) => fixture.cleanUp()));
    });

    test("every durable name sees every event; one name's subscribers share them", async () => {
      const bus = await (await create()).open();
      const billing = collector();
      const webhooksA = collector();
      const webhooksB = collector();
      const subscriptions = [
        bus.subscribe(billing.handler, { durableName: "billing", subjectFilter: "job.*" }),
        bus.subscribe(webhooksA.handler, { durableName: "webhooks", subjectFilter: "job.*" }),
        bus.subscribe(webhooksB.handler, { durableName: "webhooks", subjectFilter: "job.*" }),
      ];
      const expected = Array.from({ length: 10 }, (_, index) => `job.succeeded:${index}`);
      for (let index = 0; index < 10; index++) await bus.publish("job.succeeded", bytes(String(index)));
      await eventually("billing's ten", () => billing.received.length === 10);
      await eventually("webhooks' ten", () => webhooksA.received.length + webhooksB.received.length === 10);
      await sleep(300);
      await Promise.all(subscriptions.map((subscription) => subscription.drain()));
      assert.deepEqual(billing.received, expected);
      assert.deepEqual([...webhooksA.received, ...webhooksB.received].sort(), [...expected].sort());
    });

    test("subject filters follow the NATS wildcards", async () => {
      const bus = await (await create()).open();
      const credits = collector();
      const jobs = collector();
      const exact = collector();
      const subscriptions = [
        bus.subscribe(credits.handler, { durableName: "credits", subjectFilter: "credits.>" }),
        bus.subscribe(jobs.handler, { durableName: "jobs", subjectFilter: "job.*" }),
        bus.subscribe(exact.handler, { durableName: "exact", subjectFilter: "job.failed" }),
      ];
      for (const subject of ["credits.granted", "credits.hold.expired", "job.failed", "job.progress.video", "credits"]) {
        await bus.publish(subject, bytes("x"));
      }
      await eventually("the credit events", () => credits.received.length === 2);
      await eventually("the job event", () => jobs.received.length === 1 && exact.received.length === 1);
      await sleep(300);
      await Promise.all(subscriptions.map((subscription) => subscription.drain()));
      assert.deepEqual(credits.received, ["credits.granted:x", "credits.hold.expired:x"]);
      assert.deepEqual(jobs.received, ["job.failed:x"]);
      assert.deepEqual(exact.received, ["job.failed:x"]);
    });

    test("a republish with the same id is dropped", async () => {
      const bus = await (await create()).open();
      const seen = collector();
      const subscription = bus.subscribe(seen.handler, { durableName: "billing", subjectFilter: ">" });
      await bus.publish("job.succeeded", bytes("1"), { id: "job-1:succeeded" });
      await bus.publish("job.succeeded", bytes("1"), { id: "job-1:succeeded" });
      await bus.publish("job.succeeded", bytes("2"), { id: "job-2:succeeded" });
      await eventually("two events", () => seen.received.length === 2);
      await sleep(300);
      await subscription.drain();
      assert.deepEqual(seen.received, ["job.succeeded:1", "job.succeeded:2"]);
    });

    test("a durable name resumes where it stopped, across re-subscribe and restart", async () => {
      const fixture = await create();
      let bus = await fixture.open();
      const first = collector();
      let subscription = bus.subscribe(first.handler, { durableName: "orchestrator", subjectFilter: "job.*" });
      await bus.publish("job.succeeded", bytes("1"));
      await eventually("event 1", () => first.received.length === 1);
      await subscription.drain();

      await bus.publish("job.succeeded", bytes("2"));
      const second = collector();
      subscription = bus.subscribe(second.handler, { durableName: "orchestrator", subjectFilter: "job.*" });
      await eventually("event 2", () => second.received.length === 1);
      await subscription.drain();
      await bus.publish("job.failed", bytes("3"));
      await bus.close();

      bus = await fixture.open();
      await bus.publish("job.failed", bytes("4"));
      const third = collector();
      subscription = bus.subscribe(third.handler, { durableName: "orchestrator", subjectFilter: "job.*" });
      await eventually("events 3 and 4", () => third.received.length === 2);
      await sleep(300);
      await subscription.drain();
      assert.deepEqual(first.received, ["job.succeeded:1"]);
      assert.deepEqual(second.received, ["job.succeeded:2"]);
      assert.deepEqual(third.received, ["job.failed:3", "job.failed:4"]);
    });

    test("headers given at publish reach the subscriber, across a restart; an event without them has none", async () => {
      const fixture = await create();
      let bus = await fixture.open();
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      await bus.publish("job.succeeded", bytes("1"), { headers: { traceparent, tracestate: "vendor=1" } });
      await bus.publish("job.succeeded", bytes("2"));
      await bus.close();
      bus = await fixture.open();
      const seen: (Readonly<Record<string, string>> | undefined)[] = [];
      const subscription = bus.subscribe(
        async (event) => {
          seen.push(event.headers);
        },
        { durableName: "orchestrator", subjectFilter: "job.*" },
      );
      await eventually("both events", () => seen.length === 2);
      await subscription.drain();
      assert.deepEqual(seen, [{ traceparent, tracestate: "vendor=1" }, undefined]);
    });

    test("a new durable name starts at the oldest retained event", async () => {
      const bus = await (await create()).open();
      await bus.publish("job.succeeded", bytes("early"));
      const late = collector();
      const subscription = bus.subscribe(late.handler, { durableName: "late", subjectFilter: "job.*" });
      await eventually("the early event", () => late.received.length === 1);
      await subscription.drain();
      assert.deepEqual(late.received, ["job.succeeded:early"]);
    });

    test("a handler that throws gets the event again after retryDelayMs, up to deliveryCountMax", async () => {
      const fixture = await create({ retryDelayMs: 300, deliveryCountMax: 3 });
      let bus = await fixture.open();
      const countedBefore = await deadLetterCount("event-bus", "job.succeeded");
      const deliveries: { payload: string; deliveryCount: number; at: number }[] = [];
      const subscription = bus.subscribe(
        async (event) => {
          deliveries.push({ payload: text(event.data), deliveryCount: event.deliveryCount, at: Date.now() });
          if (text(event.data) === "poison" || event.deliveryCount === 1) throw new Error("handler failure (expected by the test)");
        },
        { durableName: "flaky", subjectFilter: "job.*" },
      );
      await bus.publish("job.succeeded", bytes("transient"));
      await bus.publish("job.succeeded", bytes("poison"));
      await eventually("all deliveries", () => deliveries.length === 5);
      await sleep(800);
      await subscription.drain();
      const of = (payload: string) => deliveries.filter((delivery) => delivery.payload === payload);
      assert.deepEqual(of("transient").map((delivery) => delivery.deliveryCount), [1, 2]);
      assert.deepEqual(of("poison").map((delivery) => delivery.deliveryCount), [1, 2, 3]);
      const gap = of("transient")[1]!.at - of("transient")[0]!.at;
      assert.ok(gap >= 250, `redelivered after ${gap} ms, expected about 300 ms`);

      // The event given up on is kept, counted once, and still listed after a restart.
      const summary = (letters: Awaited<ReturnType<EventBus["deadLetters"]>>) =>
        letters.map((letter) => [letter.port, letter.subject, text(letter.data), letter.deliveryCount, letter.reason, letter.durableName]);
      const expected = [["event-bus", "job.succeeded", "poison", 3, "delivery_count_max", "flaky"]];
      assert.deepEqual(summary(await bus.deadLetters()), expected);
      assert.match((await bus.deadLetters())[0]!.id, /^flaky:\d+$/);
      assert.equal(await deadLetterCount("event-bus", "job.succeeded"), countedBefore + 1, "cutline_dead_letters_total counts it once");
      await bus.close();
      bus = await fixture.open();
      assert.deepEqual(summary(await bus.deadLetters()), expected);
    });
  });
}

// INFERENCE_TASKS_IN_FLIGHT_MAX: the consumer's cap on tasks one process holds, never more than the engine's queue takes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../common/config.loader.ts";
import { loadInferenceServiceConfig, tasksInFlightMaxOf } from "./inference.config.ts";

test("INFERENCE_TASKS_IN_FLIGHT_MAX: 0 leaves the consumer's two batches' worth, a number caps it, past the engine's queue is refused by name", () => {
  assert.equal(tasksInFlightMaxOf(loadInferenceServiceConfig({})), undefined);
  assert.equal(tasksInFlightMaxOf(loadInferenceServiceConfig({ INFERENCE_TASKS_IN_FLIGHT_MAX: "16" })), 16);
  assert.throws(
    () => loadInferenceServiceConfig({ INFERENCE_TASKS_IN_FLIGHT_MAX: "40", INFERENCE_QUEUE_LENGTH_MAX: "32" }),
    (error: unknown) => error instanceof ConfigError && /INFERENCE_TASKS_IN_FLIGHT_MAX=40 must be at most INFERENCE_QUEUE_LENGTH_MAX=32/.test(error.message),
  );
});

test("INFERENCE_EXECUTION_PROVIDERS: a list of the providers the engine knows, in order; anything else is refused at load, naming the allowed ones", () => {
  assert.deepEqual(loadInferenceServiceConfig({}).INFERENCE_EXECUTION_PROVIDERS, ["cuda", "cpu"]);
  assert.deepEqual(loadInferenceServiceConfig({ INFERENCE_EXECUTION_PROVIDERS: " CPU , cuda " }).INFERENCE_EXECUTION_PROVIDERS, ["cpu", "cuda"]);
  for (const [raw, problem] of [
    ["gpu", /INFERENCE_EXECUTION_PROVIDERS="gpu": "gpu" is not one of cuda, cpu/],
    ["cuda,tensorrt", /"tensorrt" is not one of cuda, cpu/],
    [",", /expected at least one of cuda, cpu/],
    ["cpu,cpu", /"cpu" is listed twice/],
  ] as const) {
    assert.throws(
      () => loadInferenceServiceConfig({ INFERENCE_EXECUTION_PROVIDERS: raw }),
      (error: unknown) => error instanceof ConfigError && problem.test(error.message),
      raw,
    );
  }
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadInferenceServiceConfig } from "./inference/inference.config.ts";
import { withSingleNodeDefaults } from "./single-node.defaults.ts";

describe("withSingleNodeDefaults", () => {
  it("runs a single node's model at niceness 9 where the environment says nothing; the service alone keeps 0", () => {
    assert.equal(loadInferenceServiceConfig(withSingleNodeDefaults({})).INFERENCE_MODEL_NICENESS, 9);
    assert.equal(loadInferenceServiceConfig({}).INFERENCE_MODEL_NICENESS, 0);
  });

  it("leaves a value the environment sets, 0 included", () => {
    assert.equal(loadInferenceServiceConfig(withSingleNodeDefaults({ INFERENCE_MODEL_NICENESS: "0" })).INFERENCE_MODEL_NICENESS, 0);
    assert.equal(loadInferenceServiceConfig(withSingleNodeDefaults({ INFERENCE_MODEL_NICENESS: "4" })).INFERENCE_MODEL_NICENESS, 4);
  });
});

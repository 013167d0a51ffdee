// The graph edit on the real IS-Net: the same bits at the traced 1024², and a valid mask at other
// sides that are multiples of 32, square or not.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import onnxProto from "onnx-proto";
import ort from "onnxruntime-node";
import { describeModel, loadModelBytes, type ModelDescription } from "../store/model.store.ts";
import { editSegmentationModel, rewriteResizeTargets, withDynamicBatch } from "./onnx-graph.editor.ts";

const { onnx } = onnxProto;

/** A one-Resize model whose target size is `Concat(inputs)`, each input a Shape of x or the traced Constant [512, 512]. */
function oneResize(options: { opset?: number; concat: ("shape" | "constant")[] | "initializer" }): Uint8Array {
  const nodes = [onnx.NodeProto.create({ name: "shape", opType: "Shape", input: ["x"], output: ["shape"] })];
  const initializer = [];
  const constant = onnx.TensorProto.create({ name: "hw", dataType: 7, dims: [2], int64Data: [512, 512] });
  let sizes = "sizes";
  if (options.concat === "initializer") {
    initializer.push(constant);
    sizes = "hw";
  } else {
    nodes.push(onnx.NodeProto.create({ name: "hw", opType: "Constant", output: ["hw"], attribute: [onnx.AttributeProto.create({ name: "value", type: onnx.AttributeProto.AttributeType.TENSOR, t: constant })] }));
    nodes.push(onnx.NodeProto.create({ name: "concat", opType: "Concat", input: options.concat.map((part) => (part === "shape" ? "shape" : "hw")), output: ["sizes"] }));
  }
  nodes.push(onnx.NodeProto.create({ name: "upsample", opType: "Resize", input: ["x", "", "", sizes], output: ["y"] }));
  const tensor = (name: string) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: 1, shape: { dim: [1, 3, 1024, 1024].map((dimValue) => ({ dimValue })) } } } });
  const graph = onnx.GraphProto.create({ name: "one-resize", node: nodes, initializer, input: [tensor("x")], output: [tensor("y")] });
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: options.opset ?? 15 }], graph })).finish();
}

/** A smooth pattern with a bright disc, so the mask has a subject and an edge. */
function input(height: number, width: number): Float32Array {
  const plane = height * width;
  const data = new Float32Array(3 * plane);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (Math.min(width, height) / 3) ** 2;
      for (let channel = 0; channel < 3; channel++) {
        data[channel * plane + y * width + x] = inside ? 0.4 - channel * 0.1 : -0.3 + 0.05 * Math.sin((x + y * channel) / 17);
      }
    }
  }
  return data;
}

async function run(session: ort.InferenceSession, model: ModelDescription, height: number, width: number): Promise<Float32Array> {
  const outputs = await session.run({ [model.input.name]: new ort.Tensor("float32", input(height, width), [1, 3, height, width]) });
  const output = outputs[model.output.name]!;
  assert.deepEqual(output.dims, [1, 1, height, width]);
  return output.data as Float32Array;
}

describe("editSegmentationModel on isnet-medium", () => {
  let model: ModelDescription;
  let batchOnly: ort.InferenceSession;
  let edited: ort.InferenceSession;
  before(async () => {
    model = await describeModel("isnet-medium");
    const original = await loadModelBytes(model);
    const options: ort.InferenceSession.SessionOptions = { executionProviders: ["cpu"], intraOpNumThreads: 2, graphOptimizationLevel: "all" };
    batchOnly = await ort.InferenceSession.create(withDynamicBatch(original, [model.output.name]), options);
    edited = await ort.InferenceSession.create(editSegmentationModel(original, [model.output.name]), options);
  });

  it("gives bit-identical output at the traced 1024²", async () => {
    const before = await run(batchOnly, model, 1024, 1024);
    const after = await run(edited, model, 1024, 1024);
    assert.equal(Buffer.compare(Buffer.from(before.buffer), Buffer.from(after.buffer)), 0);
  });

  it("runs at 768² and at a non-square 512×768, the unedited graph failing there", async () => {
    await assert.rejects(run(batchOnly, model, 768, 768));
    for (const [height, width] of [[768, 768], [512, 768]] as const) {
      const mask = await run(edited, model, height, width);
      const centre = mask[(height / 2) * width + width / 2]!;
      const corner = mask[2 * width + 2]!;
      assert.ok(mask.every((value) => value >= 0 && value <= 1), `${height}×${width}: mask values within 0–1`);
      assert.ok(centre > corner, `${height}×${width}: the disc (${centre}) scores above the corner (${corner})`);
    }
  });

  it("refuses a model whose resizes it cannot rescale", () => {
    assert.throws(() => editSegmentationModel(new Uint8Array(), ["output"]), /no graph|no data input|no Resize/);
  });

  it("rewrites every one of the model's 39 Resize targets", async () => {
    const graph = onnx.ModelProto.decode(await loadModelBytes(model)).graph as InstanceType<typeof onnx.GraphProto>;
    assert.equal(rewriteResizeTargets(graph), 39);
  });

  it("refuses, naming the Resize, a target it would leave constant, and an opset without Shape(start, end)", () => {
    assert.doesNotThrow(() => editSegmentationModel(oneResize({ concat: ["shape", "constant"] }), ["y"]), "the traced shape: rewritten");
    assert.throws(() => editSegmentationModel(oneResize({ concat: ["constant", "shape"] }), ["y"]), /Resize upsample: its target size is not Concat\(Shape, Constant\[h, w\]\)/);
    assert.throws(() => editSegmentationModel(oneResize({ concat: "initializer" }), ["y"]), /Resize upsample: its target size is not Concat\(Shape, Constant\[h, w\]\)/);
    assert.throws(() => editSegmentationModel(oneResize({ opset: 13, concat: ["shape", "constant"] }), ["y"]), /opset 13 .*needs opset 15 or later/);
  });
});

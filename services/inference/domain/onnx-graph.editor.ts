import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type NodeProto = Parameters<typeof onnx.NodeProto.encode>[0];

export const BATCH_DIMENSION = "batch";

/**
 * Rewrites an ONNX model so the batch dimension is dynamic and only `keepOutputs` remain.
 *
 * The exported IS-Net pins dim 0 of its input and of its twelve outputs to 1, and carries
 * intermediate shapes (value_info) inferred for batch 1; onnxruntime would reject a batch of 2
 * or, worse, trust the stale shapes. The side outputs (deep-supervision maps and decoder
 * features) cost memory and copies on every run and nobody reads them. Dim 0 of the inputs and
 * kept outputs becomes the symbolic `batch`; value_info is dropped so onnxruntime infers the
 * shapes again; nodes whose results no longer reach a kept output are pruned.
 */
export function withDynamicBatch(model: Uint8Array, keepOutputs: readonly string[]): Uint8Array {
  const decoded = onnx.ModelProto.decode(model);
  const graph = decoded.graph as InstanceType<typeof onnx.GraphProto> | null | undefined;
  if (graph === null || graph === undefined) throw new Error("ONNX model has no graph");

  const outputs = graph.output.filter((output) => keepOutputs.includes(output.name ?? ""));
  const missing = keepOutputs.filter((name) => !outputs.some((output) => output.name === name));
  if (missing.length > 0) throw new Error(`ONNX model has no output ${missing.join(", ")}`);
  graph.output = outputs;

  const initializers = new Set(graph.initializer.map((initializer) => initializer.name ?? ""));
  for (const valueInfo of [...graph.input.filter((input) => !initializers.has(input.name ?? "")), ...graph.output]) {
    const dims = valueInfo.type?.tensorType?.shape?.dim;
    if (dims === undefined || dims === null || dims.length === 0) continue;
    dims[0] = onnx.TensorShapeProto.Dimension.create({ dimParam: BATCH_DIMENSION });
  }
  graph.valueInfo = [];

  // Walk back from the kept outputs; everything not reached is dead once the side outputs go.
  const producers = new Map<string, NodeProto>();
  for (const node of graph.node) for (const output of node.output ?? []) producers.set(output, node);
  const live = new Set<NodeProto>();
  const pending = [...keepOutputs];
  while (pending.length > 0) {
    const node = producers.get(pending.pop()!);
    if (node === undefined || live.has(node)) continue;
    live.add(node);
    pending.push(...(node.input ?? []).filter((input: string) => input !== ""));
  }
  graph.node = graph.node.filter((node) => live.has(node));
  const used = new Set(graph.node.flatMap((node) => node.input ?? []));
  graph.initializer = graph.initializer.filter((initializer) => used.has(initializer.name ?? ""));

  return onnx.ModelProto.encode(decoded).finish();
}

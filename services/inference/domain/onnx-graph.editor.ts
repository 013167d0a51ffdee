import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type NodeProto = Parameters<typeof onnx.NodeProto.encode>[0];
type GraphProto = InstanceType<typeof onnx.GraphProto>;

export const BATCH_DIMENSION = "batch";
export const HEIGHT_DIMENSION = "height";
export const WIDTH_DIMENSION = "width";

/** Every side of the input must be a multiple of this: the model pools five times by 2. */
export const INPUT_SIDE_MULTIPLE = 32;

/**
 * The resizes' target sizes were traced for this input side: a constant `c` stands for
 * `side × c / tracedSide`.
 */
const tracedSide = 1024;

/** ONNX TensorProto.DataType INT64. */
const int64Type = 7;

/** The first opset whose Shape takes `start` and `end`, which the rewrite's Shape(input)[2:4] uses. */
export const SHAPE_SLICE_OPSET_MIN = 15;

/**
 * The model the engine runs: dynamic batch (see `withDynamicBatch`), any input side that is a
 * multiple of 32 (see `rewriteResizeTargets`), and only `keepOutputs` left. One decode and one
 * encode for both edits: each costs ~40 ms on the 88 MB model.
 */
export function editSegmentationModel(model: Uint8Array, keepOutputs: readonly string[]): Uint8Array {
  const decoded = onnx.ModelProto.decode(model);
  const graph = graphOf(decoded);
  const opset = decoded.opsetImport.find((entry) => entry.domain === undefined || entry.domain === null || entry.domain === "" || entry.domain === "ai.onnx");
  const version = Number(opset?.version ?? 0);
  if (version < SHAPE_SLICE_OPSET_MIN) {
    throw new Error(`ONNX model imports opset ${version} of the default domain; the resize rewrite's Shape(start, end) needs opset ${SHAPE_SLICE_OPSET_MIN} or later`);
  }
  rewriteResizeTargets(graph);
  makeBatchDynamic(graph, keepOutputs, { spatial: true });
  return onnx.ModelProto.encode(decoded).finish();
}

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
  makeBatchDynamic(graphOf(decoded), keepOutputs, { spatial: false });
  return onnx.ModelProto.encode(decoded).finish();
}

function graphOf(model: InstanceType<typeof onnx.ModelProto>): GraphProto {
  const graph = model.graph as GraphProto | null | undefined;
  if (graph === null || graph === undefined) throw new Error("ONNX model has no graph");
  return graph;
}

function makeBatchDynamic(graph: GraphProto, keepOutputs: readonly string[], options: { spatial: boolean }): void {
  const outputs = graph.output.filter((output) => keepOutputs.includes(output.name ?? ""));
  const missing = keepOutputs.filter((name) => !outputs.some((output) => output.name === name));
  if (missing.length > 0) throw new Error(`ONNX model has no output ${missing.join(", ")}`);
  graph.output = outputs;

  const initializers = new Set(graph.initializer.map((initializer) => initializer.name ?? ""));
  for (const valueInfo of [...graph.input.filter((input) => !initializers.has(input.name ?? "")), ...graph.output]) {
    const dims = valueInfo.type?.tensorType?.shape?.dim;
    if (dims === undefined || dims === null || dims.length === 0) continue;
    dims[0] = onnx.TensorShapeProto.Dimension.create({ dimParam: BATCH_DIMENSION });
    if (options.spatial && dims.length === 4) {
      dims[2] = onnx.TensorShapeProto.Dimension.create({ dimParam: HEIGHT_DIMENSION });
      dims[3] = onnx.TensorShapeProto.Dimension.create({ dimParam: WIDTH_DIMENSION });
    }
  }
  graph.valueInfo = [];
  pruneDeadNodes(graph, keepOutputs);
}

/** Walks back from the kept outputs; everything not reached is dead once the side outputs go. */
function pruneDeadNodes(graph: GraphProto, keepOutputs: readonly string[]): void {
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
}

/**
 * The exported IS-Net traced every `Resize` target size as `Concat(Shape(x)[0:2], Constant[h, w])`
 * with h and w computed for a 1024² input, so any other input fails at the first `Concat` after
 * an upsample. Each constant `c` becomes `Shape(input)[2:4] × c / 1024` (integer arithmetic: for
 * sides that are multiples of 32 and c ≥ 32, exact), computed once per distinct c (six of them).
 * At 1024² every target equals the old constant, so the output is bit-identical. A Resize by
 * scales alone (no sizes) fits any side and is left as it is; a target size of any other form is
 * refused here, naming the Resize, since left constant it would fail only at the first run at
 * another side. Returns how many targets were rewritten (39 in IS-Net).
 */
export function rewriteResizeTargets(graph: GraphProto): number {
  const input = graph.input.find((candidate) => !graph.initializer.some((initializer) => initializer.name === candidate.name));
  if (input?.name === undefined || input.name === null) throw new Error("ONNX model has no data input");
  const producers = new Map<string, NodeProto>();
  for (const node of graph.node) for (const output of node.output ?? []) producers.set(output, node);

  const prefix = "/cutline/resize_target";
  const spatialShape = `${prefix}/input_hw`;
  const added: NodeProto[] = [
    onnx.NodeProto.create({
      name: spatialShape,
      opType: "Shape",
      input: [input.name],
      output: [spatialShape],
      attribute: [intAttribute("start", 2), intAttribute("end", 4)],
    }),
  ];
  graph.initializer.push(int64Scalar(`${prefix}/traced_side`, tracedSide));
  const targetOf = new Map<number, string>();
  const rewrittenConcats = new Set<NodeProto>();
  let rewritten = 0;
  for (const resize of graph.node.filter((node) => node.opType === "Resize")) {
    const sizes = resize.input?.[3] ?? "";
    if (sizes === "") continue;
    const concat = producers.get(sizes);
    if (concat !== undefined && rewrittenConcats.has(concat)) {
      rewritten++;
      continue;
    }
    const constant = concat?.opType === "Concat" && concat.input?.length === 2 ? producers.get(concat.input[1]!) : undefined;
    if (concat === undefined || constant?.opType !== "Constant") {
      throw new Error(`Resize ${resize.name}: its target size is not Concat(Shape, Constant[h, w]) as traced, so this editor cannot rescale it`);
    }
    const [height, width] = int64Values(constant);
    if (height === undefined || height !== width || tracedSide % height !== 0 || height < INPUT_SIDE_MULTIPLE) {
      throw new Error(`Resize ${resize.name} has a target size ${height}×${width} this editor cannot rescale`);
    }
    let target = targetOf.get(height);
    if (target === undefined) {
      target = `${prefix}/${height}`;
      graph.initializer.push(int64Scalar(`${target}/factor`, height));
      added.push(
        onnx.NodeProto.create({ name: `${target}/mul`, opType: "Mul", input: [spatialShape, `${target}/factor`], output: [`${target}/scaled`] }),
        onnx.NodeProto.create({ name: `${target}/div`, opType: "Div", input: [`${target}/scaled`, `${prefix}/traced_side`], output: [target] }),
      );
      targetOf.set(height, target);
    }
    concat.input![1] = target;
    rewrittenConcats.add(concat);
    rewritten++;
  }
  if (rewritten === 0) throw new Error("ONNX model has no Resize with a traced target size to rewrite");
  // Topological order: the new nodes read only the graph input and initializers.
  graph.node = [...added, ...graph.node];
  return rewritten;
}

function intAttribute(name: string, value: number) {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: value });
}

function int64Scalar(name: string, value: number) {
  const raw = new BigInt64Array([BigInt(value)]);
  return onnx.TensorProto.create({ name, dataType: int64Type, dims: [1], rawData: new Uint8Array(raw.buffer) });
}

function int64Values(constant: NodeProto): number[] {
  const tensor = constant.attribute?.find((attribute) => attribute.name === "value")?.t;
  if (tensor === undefined || tensor === null) return [];
  if (tensor.int64Data !== undefined && tensor.int64Data !== null && tensor.int64Data.length > 0) return tensor.int64Data.map(Number);
  const raw = tensor.rawData;
  if (raw === undefined || raw === null) return [];
  const copy = new Uint8Array(raw);
  return Array.from(new BigInt64Array(copy.buffer, 0, copy.length / 8), Number);
}

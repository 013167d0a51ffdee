// Per-pixel mask work in its own thread: on a 16-megapixel image the guided filter and the
// foreground estimate take long enough to stall health checks if run on the event loop. With
// `threads` above 1 the thread splits each image into stripes of rows and runs all but the first
// on helper threads: on a machine where one image is in flight the other cores are otherwise idle
// while it is refined.
import { parentPort, workerData } from "node:worker_threads";
import {
  bandRegionOf,
  createRefineFrame,
  defaultRefineOptions,
  foregroundRegionOf,
  foregroundRowCost,
  fuseMasks,
  refinePhase,
  refineWhole,
  stripesOf,
  type InterleavedImage,
  type Plane,
  type RefineFrame,
  type RefinePhase,
  type Region,
  type Rows,
} from "../domain/mask.refiner.ts";
import { ScratchArena } from "../domain/scratch.arena.ts";
import type { RefineStripeRequest, RefineStripeResponse } from "./mask-refine-stripe.thread.ts";
import { serveThread, ThreadPool } from "./thread.pool.ts";

export interface MaskRefineSetup {
  /** Threads one image is refined on: this one and `threads − 1` helpers (INFERENCE_REFINE_THREADS, resolved). */
  threads: number;
}

export interface MaskRefineRequest {
  /** The processed image, RGBA. */
  rgba: Uint8Array;
  width: number;
  height: number;
  /** The model's masks, `side`², values 0–1, fused (fuseMasks: the views a quality setting runs; most often one). */
  masks: { data: Float32Array; side: number }[];
  refine: boolean;
  /** Multiply the mask by the input's own alpha (transparency kept as a hint). */
  useInputAlpha: boolean;
  /**
   * Only the alpha, for the subject's box (Smart Crop): no edge refinement, and `rgba` comes back
   * as it came, the original pixels.
   */
  alphaOnly?: boolean;
}

export interface MaskRefineResponse {
  /** The cut-out: foreground colours with the final alpha, RGBA (the request's buffer, reused); with `alphaOnly`, the request's pixels unchanged. */
  subject: Uint8Array;
  alpha: Uint8Array;
}

// A stripe shorter than this costs more in hand-offs than its share of the work saves.
const stripeRowsMin = 96;

const setup = workerData as MaskRefineSetup;
const arena = new ScratchArena();
const helpers =
  setup.threads > 1 ? new ThreadPool<RefineStripeRequest, RefineStripeResponse>(new URL("./mask-refine-stripe.thread.ts", import.meta.url), setup.threads - 1, () => ({ data: {} })) : undefined;

/** Each stripe's box from one phase: the first stripe here, the others on the helpers at the same time. */
async function inStripes(frame: RefineFrame, stripes: Rows[], phase: RefinePhase, region: Region | undefined): Promise<(Region | undefined)[]> {
  const others = stripes.slice(1).map((rows) => helpers!.run({ frame, phase, rows, region }).then(({ box }) => box));
  let first: Region | undefined;
  try {
    first = refinePhase(frame, phase, stripes[0]!, region, arena);
  } finally {
    // Every helper is done with the frame before this returns or throws: its memory serves the next image.
    await Promise.allSettled(others);
  }
  return [first, ...(await Promise.all(others))];
}

/**
 * Each image's frame (a copy of the image and the mask, and the planes the phases fill: ~13 bytes a pixel) in
 * memory kept between images, shared with the helpers where there are any: fresh buffers of that
 * size are mapped and zeroed page by page on first touch, several milliseconds per image here.
 */
const frameMemory = new ScratchArena(undefined, undefined, helpers === undefined ? undefined : (bytes) => new SharedArrayBuffer(bytes));

function copyInto<T extends Uint8Array | Float32Array>(array: T, make: (length: number) => T): T {
  const copy = make(array.length);
  copy.set(array);
  return copy;
}

async function refine(request: MaskRefineRequest) {
  const { rgba, width, height } = request;
  const mask = fuseMasks(request.masks.map(({ data, side }) => ({ plane: { data, width: side, height: side }, weight: 1 })));
  const alphaOnly = request.alphaOnly === true;
  const options = request.refine && !alphaOnly ? defaultRefineOptions : undefined;
  // Each phase's stripes share out the rows of its region, where its work is.
  const stripesFor = (region?: Region, rowCost?: (row: number) => number) => (helpers === undefined ? [] : stripesOf(width, height, setup.threads, stripeRowsMin, region, rowCost));
  try {
    let frame: RefineFrame;
    if (stripesFor().length > 1) {
      const image: InterleavedImage = { pixels: copyInto(rgba, (length) => frameMemory.uint8(length)), channels: 4, width, height };
      const sharedMask: Plane = { ...mask, data: copyInto(mask.data, (length) => frameMemory.float32(length)) };
      frame = createRefineFrame(image, sharedMask, options, request.useInputAlpha, frameMemory);
      const band = bandRegionOf(frame, await inStripes(frame, stripesFor(), "upscale", undefined));
      const foreground = foregroundRegionOf(frame, await inStripes(frame, stripesFor(band), "alpha", band));
      if (!alphaOnly) await inStripes(frame, stripesFor(foreground, foreground && foregroundRowCost(frame, foreground)), "subject", foreground);
    } else {
      frame = createRefineFrame({ pixels: rgba, channels: 4, width, height }, mask, options, request.useInputAlpha, frameMemory);
      refineWhole(frame, alphaOnly, arena);
    }
    // The replies own buffers of their own: the request's for the subject, a copy of the alpha.
    const alpha = frame.alpha.slice();
    if (!alphaOnly) rgba.set(frame.subject);
    return { response: { subject: rgba, alpha }, transfer: [rgba.buffer as ArrayBuffer, alpha.buffer as ArrayBuffer] };
  } finally {
    frameMemory.reset();
  }
}

await serveThread<MaskRefineRequest, MaskRefineResponse>(
  parentPort!,
  async () => {
    await helpers?.ready;
    return {};
  },
  refine,
);

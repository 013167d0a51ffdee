// A helper of a refine thread: one phase of one image's refinement over a stripe of its rows, in
// memory shared with the refine thread (mask-refine.thread.ts), which does its own stripe meanwhile.
import { parentPort } from "node:worker_threads";
import { refinePhase, type RefineFrame, type RefinePhase, type Region, type Rows } from "../domain/mask.refiner.ts";
import { ScratchArena } from "../domain/scratch.arena.ts";
import { serveThread } from "./thread.pool.ts";

const arena = new ScratchArena();

export interface RefineStripeRequest {
  /** The image's frame; its planes are SharedArrayBuffer views, so the writes are seen by the refine thread. */
  frame: RefineFrame;
  phase: RefinePhase;
  rows: Rows;
  region: Region | undefined;
}

export interface RefineStripeResponse {
  box: Region | undefined;
}

await serveThread<RefineStripeRequest, RefineStripeResponse>(
  parentPort!,
  async () => ({}),
  async ({ frame, phase, rows, region }) => ({ response: { box: refinePhase(frame, phase, rows, region, arena) } }),
);

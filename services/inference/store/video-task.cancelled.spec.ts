// A video job cancelled (or timed out) while it waited in the queue: its task stops at the
// cancel marker, before the input is downloaded or the engine started. No model: it never runs.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import pino from "pino";
import { InProcessBlobStore } from "../../common/adapters/index.ts";
import { SegmentTaskSchema, TaskKind } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import { VideoFormat, VideoOptionsSchema } from "../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { cancelMarkerKeyOf } from "../../common/job-cancel-marker.ts";
import { runVideoTask, VideoTaskStopped } from "./video-task.consumer.ts";

const log = pino({ level: "silent" });
const dataDir = mkdtempSync(join(tmpdir(), "cutline-video-cancelled-"));
const temporaryDirectory = mkdtempSync(join(tmpdir(), "cutline-video-cancelled-work-"));
const blobs = new InProcessBlobStore({ dataDir, log });
after(async () => {
  await blobs.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(temporaryDirectory, { recursive: true, force: true });
});

test("a task whose job was cancelled in the queue stops at the marker: no download, no engine, no temporary folder", async () => {
  const task = create(SegmentTaskSchema, {
    jobId: "cancelled-in-queue",
    kind: TaskKind.VIDEO,
    // Not stored: a task that went on to download it would fail with `internal`, not stop.
    inputBlobKey: "inputs/never-stored",
    resultBlobKey: "results/cancelled-in-queue",
    videoOptions: create(VideoOptionsSchema, { format: VideoFormat.WEBM }),
    videoDurationMs: 1000,
  });
  await blobs.put(cancelMarkerKeyOf(task.jobId), new Uint8Array());
  let engineRuns = 0;
  await assert.rejects(
    runVideoTask({
      task,
      blobStore: blobs,
      video: { run: async () => { engineRuns += 1; throw new Error("the engine is not reached"); }, temporaryDirectory },
      log,
      stop: new AbortController().signal,
      onProgress: () => {},
    }),
    (error: unknown) => error instanceof VideoTaskStopped,
  );
  assert.equal(engineRuns, 0);
  assert.deepEqual(readdirSync(temporaryDirectory), []);
});

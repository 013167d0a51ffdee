// The consumer's loading of a task's background image from the blob store (the queue message
// carries only its key), against the in-process blob store.
import { create } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import pino from "pino";
import { InProcessBlobStore } from "../../common/adapters/index.ts";
import { OutputFormat } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { SegmentTaskSchema } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import { defaultInFlightMax, optionsWithBackground } from "./segment.consumer.ts";

const dataDir = mkdtempSync(join(tmpdir(), "cutline-segment-consumer-"));
const blobs = new InProcessBlobStore({ dataDir, log: pino({ level: "silent" }) });
after(async () => {
  await blobs.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test("the background image is loaded from its blob; bytes that came inside the options are not used", async () => {
  const background = new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3]);
  await blobs.put("inputs/hold-1/background", background, { contentType: "image/jpeg" });
  const task = create(SegmentTaskSchema, {
    jobId: "job-1",
    options: { format: OutputFormat.JPEG, backgroundImage: new Uint8Array([9, 9, 9]) },
    backgroundImageBlobKey: "inputs/hold-1/background",
  });
  const options = await optionsWithBackground(task, blobs);
  assert.deepEqual(options?.backgroundImage, background);
  assert.equal(options?.format, OutputFormat.JPEG);
  assert.deepEqual(task.options?.backgroundImage, new Uint8Array([9, 9, 9]), "the task itself is left as it came");

  const withoutKey = await optionsWithBackground(create(SegmentTaskSchema, { options: { backgroundImage: new Uint8Array([9]) } }), blobs);
  assert.equal(withoutKey?.backgroundImage.length, 0, "only the gateway's checked blob is ever composited");
});

test("a background blob that is gone answers undefined, so the consumer fails the job instead of ignoring the background", async () => {
  const task = create(SegmentTaskSchema, { jobId: "job-2", backgroundImageBlobKey: "inputs/missing/background" });
  assert.equal(await optionsWithBackground(task, blobs), undefined);
});

test("the consumer takes two batches' worth of tasks by default, never more than the engine holds", () => {
  // CPU: one session worker, batches of 1; the rest wait in the shared queue, not decoded in this process.
  assert.equal(defaultInFlightMax({ capacity: 33, runningCapacity: 1 }), 2);
  assert.equal(defaultInFlightMax({ capacity: 40, runningCapacity: 8 }), 16);
  assert.equal(defaultInFlightMax({ capacity: 5, runningCapacity: 4 }), 5);
});

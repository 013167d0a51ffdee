// The real model, loaded once for this file: batching equivalence, responsiveness, the full
// pipeline, quality on dev images, the Connect handler and the work-queue consumer.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, getPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { pino } from "pino";
import { register } from "prom-client";
import sharp from "sharp";
import { SHARED_DIRECTORY } from "../../../test/harness.ts";
import { discPhoto } from "../testdata/disc-photo.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../../common/adapters/index.ts";
import { reasonOf } from "../../common/errors.ts";
import { ImageOperation, ImageOptionsSchema, OutputFormat } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { InferenceService } from "../../common/gen/cutline/inference/v1/inference_service_pb.ts";
import { SegmentTaskSchema, TaskEventSchema, type TaskEvent } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import { loadInferenceConfig, threadsPerSession } from "../inference.config.ts";
import { conventionOf, scoreMask } from "../domain/mask.metrics.ts";
import { createInferenceHandlers } from "../handlers/inference.handlers.ts";
import { STAGE_FRACTIONS, startSegmentConsumer } from "../store/segment.consumer.ts";
import { createSegmentationEngine, type SegmentationEngine } from "./segmentation.engine.ts";

const log = pino({ level: "silent" });
const evalDirectory = join(SHARED_DIRECTORY, "eval", "dev");
const hasEvalData = existsSync(evalDirectory);

function pattern(seed: number): Uint8Array {
  const rgb = new Uint8Array(1024 * 1024 * 3);
  for (let index = 0; index < rgb.length; index++) rgb[index] = (Math.sin(index * 0.0007 * seed) * 120 + 128) | 0;
  return rgb;
}

async function batchOfTwoCount(): Promise<number> {
  const metric = await register.getSingleMetric("cutline_inference_batch_size")!.get();
  const bucket = (le: number) => metric.values.find((value) => value.labels.le === le)?.value ?? 0;
  return bucket(2) - bucket(1);
}

type Raw = { data: Buffer; info: { width: number; height: number; channels: number } };

/** Where `window` sits in `image` exactly (same channels), or undefined. */
function findWindow(image: Raw, window: Raw): { left: number; top: number } | undefined {
  const { channels } = image.info;
  const rowBytes = window.info.width * channels;
  for (let top = 0; top + window.info.height <= image.info.height; top++) {
    for (let left = 0; left + window.info.width <= image.info.width; left++) {
      let same = true;
      for (let row = 0; same && row < window.info.height; row++) {
        const at = ((top + row) * image.info.width + left) * channels;
        same = image.data.subarray(at, at + rowBytes).equals(window.data.subarray(row * rowBytes, (row + 1) * rowBytes));
      }
      if (same) return { left, top };
    }
  }
  return undefined;
}

let engine: SegmentationEngine;

before(async () => {
  // Batches of up to 2, with a queue delay long enough that two submissions always meet.
  engine = await createSegmentationEngine(
    loadInferenceConfig({ INFERENCE_BATCH_SIZE_MAX: "2", INFERENCE_QUEUE_DELAY_MS_MAX: "400", INFERENCE_EXECUTION_PROVIDERS: "cuda,cpu" }),
    log,
  );
  await engine.ready;
});
after(async () => engine.close());

describe("segmentation engine", () => {
  it("loads the described model on an available provider", () => {
    assert.equal(engine.modelName, "isnet-medium@1.4.5");
    assert.ok(["cuda", "cpu"].includes(engine.executionProvider!));
    assert.equal(engine.batchSizeMax, engine.executionProvider === "cpu" ? 2 : 8);
  });

  it("gives a batch of 2 the same masks as two single runs", async () => {
    const first = pattern(1);
    const second = pattern(3);
    const singleFirst = await engine.segmentTensor(first.slice(), { highPriority: false });
    const singleSecond = await engine.segmentTensor(second.slice(), { highPriority: false });
    const batchesOfTwo = await batchOfTwoCount();
    const [batchFirst, batchSecond] = await Promise.all([
      engine.segmentTensor(first.slice(), { highPriority: false }),
      engine.segmentTensor(second.slice(), { highPriority: false }),
    ]);
    assert.equal(await batchOfTwoCount(), batchesOfTwo + 1, "the two images ran as one batch");
    let maxDifference = 0;
    for (let index = 0; index < singleFirst.length; index++) {
      maxDifference = Math.max(maxDifference, Math.abs(singleFirst[index]! - batchFirst![index]!), Math.abs(singleSecond[index]! - batchSecond![index]!));
    }
    assert.ok(maxDifference <= 1e-4, `max abs difference ${maxDifference}`);
  });

  it("keeps the event loop responsive while the model runs", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const started = performance.now();
    await engine.segmentTensor(pattern(2), { highPriority: true });
    clearInterval(timer);
    const expected = (performance.now() - started) / 20;
    assert.ok(ticks >= expected * 0.5, `${ticks} timer ticks during a ${Math.round(performance.now() - started)} ms run (expected about ${Math.round(expected)})`);
  });

  it("runs the model's threads at INFERENCE_MODEL_NICENESS, the service's own thread at its priority", { skip: process.platform !== "linux" && "thread niceness is per thread on Linux only" }, async () => {
    assert.equal(engine.modelNiceness, 0, "the default leaves them as they are");
    // Field 19 of /proc/<pid>/task/<tid>/stat is the thread's nice value; the name (field 2) may hold spaces.
    const niceOf = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[16]);
    const nicedCount = () => readdirSync("/proc/self/task").filter((tid) => niceOf(tid) === 7).length;
    const before = nicedCount();
    const niced = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_MODEL_NICENESS: "7", INFERENCE_WARMUP_RUNS: "0" }), log);
    try {
      await niced.ready;
      assert.equal(niced.modelNiceness, 7);
      assert.equal(getPriority(), 0, "the event loop's thread is untouched");
      // The session's thread and onnxruntime's intra-op threads (all but the caller's own).
      assert.ok(nicedCount() - before >= threadsPerSession(loadInferenceConfig()), `${nicedCount() - before} threads at niceness 7`);
    } finally {
      await niced.close();
    }
  });

  it("keeps IMAGE_THREADS libvips threads per operation after its decode threads load sharp (which sets 1 on glibc)", async () => {
    await engine.process(await discPhoto(), create(ImageOptionsSchema, { format: OutputFormat.PNG, quality: Quality.FAST }), { highPriority: false });
    assert.equal(sharp.concurrency(), availableParallelism(), "IMAGE_THREADS=0: the machine's cores");
  });

  it("cuts out a subject end to end: transparent PNG of the input's size", async () => {
    const image = await discPhoto();
    const result = await engine.process(image, create(ImageOptionsSchema, { format: OutputFormat.PNG }), { highPriority: false });
    assert.equal(result.contentType, "image/png");
    assert.deepEqual([result.width, result.height], [320, 240]);
    const { data, info } = await sharp(result.image).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 4);
    const alphaAt = (x: number, y: number) => data[(y * info.width + x) * 4 + 3]!;
    assert.ok(alphaAt(160, 120) > 200, `centre of the disc is opaque (${alphaAt(160, 120)})`);
    assert.ok(alphaAt(5, 5) < 50, `corner is transparent (${alphaAt(5, 5)})`);
    // Hidden colour is zeroed (it would only bloat the PNG); every visible pixel keeps one.
    let transparent = 0;
    for (let pixel = 0; pixel < info.width * info.height; pixel++) {
      if (data[pixel * 4 + 3] !== 0) continue;
      transparent += 1;
      assert.deepEqual([...data.subarray(pixel * 4, pixel * 4 + 3)], [0, 0, 0], `pixel ${pixel} is transparent but keeps a colour`);
    }
    assert.ok(transparent > 0, "the corners are fully transparent");
  });

  it("gives the mirrored pass the average of the image's and its mirror image's masks", async () => {
    const side = 768;
    const rgb = new Uint8Array(side * side * 3);
    for (let index = 0; index < rgb.length; index++) rgb[index] = (Math.sin(index * 0.0011) * 100 + 128 + (index % (side * 3) < side * 1.2 ? 60 : 0)) & 255;
    const mirror = new Uint8Array(rgb.length);
    for (let row = 0; row < side; row++) {
      for (let column = 0; column < side; column++) mirror.set(rgb.subarray((row * side + column) * 3, (row * side + column) * 3 + 3), (row * side + side - 1 - column) * 3);
    }
    const [plain, flipped, averaged] = await Promise.all([
      engine.segmentTensor(rgb.slice(), { highPriority: false }, { side, mirrored: false }),
      engine.segmentTensor(mirror, { highPriority: false }, { side, mirrored: false }),
      engine.segmentTensor(rgb.slice(), { highPriority: false }, { side, mirrored: true }),
    ]);
    assert.equal(averaged.length, side * side);
    let worst = 0;
    for (let row = 0; row < side; row++) {
      for (let column = 0; column < side; column++) {
        const expected = (plain[row * side + column]! + flipped[row * side + side - 1 - column]!) / 2;
        worst = Math.max(worst, Math.abs(averaged[row * side + column]! - expected));
      }
    }
    assert.ok(worst < 1e-4, `mirrored mask differs from the average by up to ${worst}`);
  });

  it("smart crops: the original pixels around the subject at the ratio, background kept, no alpha", async () => {
    // A wide dark ellipse left of centre on a gradient: every pixel of the crop is checkable.
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240"><defs><linearGradient id="g"><stop offset="0" stop-color="#f0e0c0"/><stop offset="1" stop-color="#c0d8f0"/></linearGradient></defs>
      <rect width="100%" height="100%" fill="url(#g)"/><ellipse cx="110" cy="130" rx="60" ry="22" fill="#2a3f8f"/></svg>`;
    const upright = await sharp(Buffer.from(svg)).png().toBuffer();
    const options = create(ImageOptionsSchema, { operation: ImageOperation.SMART_CROP, aspectRatio: "16:9", cropMarginPercent: 10, format: OutputFormat.PNG });
    const result = await engine.process(upright, options, { highPriority: false });
    assert.equal(result.contentType, "image/png");
    const crop = await sharp(result.image).raw().toBuffer({ resolveWithObject: true });
    assert.equal(crop.info.channels, 3, "no alpha channel: the background is kept");
    assert.ok(Math.abs(crop.info.width / crop.info.height - 16 / 9) < 0.02, `${crop.info.width}x${crop.info.height} is 16:9`);
    // The ellipse's box (120x44) plus 10 % is about 144x53, grown to 16:9: about 144x81.
    assert.ok(crop.info.width >= 136 && crop.info.width <= 152, `width ${crop.info.width}`);
    const original = await sharp(upright).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const offset = findWindow(original, crop);
    assert.ok(offset, "the crop is a window of the original, pixel for pixel");
    assert.ok(Math.abs(offset.left + crop.info.width / 2 - 110) <= 4 && Math.abs(offset.top + crop.info.height / 2 - 130) <= 4, `centred on the subject: ${JSON.stringify(offset)}`);

    // The same scene stored sideways with EXIF orientation 6: cropped as it is shown, upright.
    const sideways = await sharp(upright).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    const turned = await engine.process(sideways, create(ImageOptionsSchema, { ...options, format: OutputFormat.UNSPECIFIED }), { highPriority: false });
    assert.equal(turned.contentType, "image/jpeg", "JPEG when no format is asked for");
    assert.ok(Math.abs(turned.width - crop.info.width) <= 4 && Math.abs(turned.height - crop.info.height) <= 4, `upright: ${turned.width}x${turned.height}`);

    for (const [refused, message] of [
      [{ format: OutputFormat.MASK }, /mask is not available for smart crop/],
      [{ subjectScalePercent: 50 }, /not available for smart crop/],
      [{ aspectRatio: "0:9" }, /aspect_ratio "0:9" is not a ratio/],
    ] as const) {
      await assert.rejects(engine.process(upright, create(ImageOptionsSchema, { ...options, ...refused }), { highPriority: false }), (error: unknown) => (error as { reason?: string }).reason === "invalid_option" && message.test((error as Error).message));
    }
  });

  it("inspects the header only and refuses cancelled calls", async () => {
    assert.deepEqual(await engine.inspect(await discPhoto(640, 480)), { format: "jpeg", width: 640, height: 480, pixels: 307200 });
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(
      engine.process(await discPhoto(), create(ImageOptionsSchema), { highPriority: false, signal: controller.signal }),
      (error: unknown) => (error as { reason?: string }).reason === "cancelled",
    );
  });

  it("reaches IoU ≥ 0.9 on three dev images where the model is good", { skip: hasEvalData ? false : `no eval data at ${evalDirectory}` }, async () => {
    for (const [source, name] of [
      ["alphamatting", "GT05.png"],
      ["grabcut", "106024.jpg"],
      ["davis2016", "blackswan_00025.jpg"],
    ] as const) {
      const image = readFileSync(join(evalDirectory, source, name));
      const result = await engine.process(image, create(ImageOptionsSchema, { format: OutputFormat.MASK }), { highPriority: false });
      const predicted = await sharp(result.image).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      const truth = await sharp(join(evalDirectory, source, name.replace(/\.(jpg|png)$/, ".mask.png"))).extractChannel(0).raw().toBuffer();
      const scores = scoreMask(new Uint8Array(predicted.data), new Uint8Array(truth), predicted.info.width, predicted.info.height, conventionOf(source));
      assert.ok(scores.iou >= 0.9, `${source}/${name}: IoU ${scores.iou.toFixed(3)}`);
    }
  });
});

describe("InferenceService handler", () => {
  it("answers Segment and maps engine errors to one code and a reason, without the cause", async () => {
    const transport = createRouterTransport(({ service }) => service(InferenceService, createInferenceHandlers(engine)));
    const client = createClient(InferenceService, transport);
    const response = await client.segment({ image: await discPhoto(160, 120), options: { format: OutputFormat.JPEG }, highPriority: true });
    assert.equal(response.contentType, "image/jpeg");
    assert.equal(response.model, "isnet-medium@1.4.5");
    assert.deepEqual([response.width, response.height], [160, 120]);

    await assert.rejects(client.segment({ image: new TextEncoder().encode("<svg xmlns='http://www.w3.org/2000/svg'/>") }), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.InvalidArgument);
      assert.equal(reasonOf(error), "unsupported_format");
      assert.match(error.rawMessage, /SVG/);
      assert.doesNotMatch(error.rawMessage, /at .*\.ts/);
      return true;
    });
  });
});

describe("segment consumer", () => {
  it("turns SegmentTasks into result blobs and job events, reporting each stage's progress; user errors are final", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cutline-inference-"));
    const workQueue = new InProcessWorkQueue({ log });
    const eventBus = new InProcessEventBus({ dataDir, log });
    const blobStore = new InProcessBlobStore({ dataDir, log });
    const events: { subject: string; event: TaskEvent }[] = [];
    const subscription = eventBus.subscribe(
      async (event) => void events.push({ subject: event.subject, event: fromBinary(TaskEventSchema, event.data) }),
      { durableName: "test", subjectFilter: "job.*" },
    );
    // Every stage reported, however quick.
    const consumer = await startSegmentConsumer({ engine, workQueue, eventBus, blobStore, log, stageProgressMsMin: 0 });
    try {
      await blobStore.put("in/good", await discPhoto(200, 150), { contentType: "image/jpeg" });
      await blobStore.put("in/bad", new TextEncoder().encode("%PDF-1.7 not an image"), { contentType: "application/pdf" });
      // Enqueued (as the orchestrator stamps it) 5 s ago: the worker counts that wait as queue time.
      const enqueuedAt = timestampFromMs(Date.now() - 5000);
      const task = (jobId: string, input: string) =>
        toBinary(SegmentTaskSchema, create(SegmentTaskSchema, { jobId, inputBlobKey: input, resultBlobKey: `out/${jobId}`, options: { format: OutputFormat.WEBP }, enqueuedAt }));
      await workQueue.enqueue(task("job-good", "in/good"), { id: "job-good" });
      await workQueue.enqueue(task("job-bad", "in/bad"), { id: "job-bad", priority: "high" });
      const deadline = Date.now() + 120_000;
      const outcomes = () => events.filter((entry) => entry.event.outcome.case === "succeeded" || entry.event.outcome.case === "failed");
      while (outcomes().length < 2 && Date.now() < deadline) await sleep(50);

      // Each task announces its start first, so the job can show "running".
      for (const jobId of ["job-good", "job-bad"]) {
        const first = events.find((entry) => entry.event.jobId === jobId);
        assert.deepEqual([first?.subject, first?.event.outcome.case], ["job.started", "started"]);
      }
      const succeeded = outcomes().find((entry) => entry.event.jobId === "job-good");
      assert.equal(succeeded?.subject, "job.succeeded");
      assert.equal(succeeded.event.outcome.case, "succeeded");
      if (succeeded.event.outcome.case === "succeeded") {
        assert.equal(succeeded.event.outcome.value.contentType, "image/webp");
        assert.deepEqual([succeeded.event.outcome.value.width, succeeded.event.outcome.value.height], [200, 150]);
        const { queueWaitMs, inferenceMs, processingTimeMs } = succeeded.event.outcome.value;
        assert.ok(queueWaitMs >= 5000 && queueWaitMs < 5000 + 120_000, `queue wait ${queueWaitMs} ms counts from enqueued_at`);
        assert.ok(inferenceMs > 0 && inferenceMs <= processingTimeMs, `inference ${inferenceMs} ms is within processing ${processingTimeMs} ms`);
      }
      // Each stage that ended before the result, with the fraction done, rising, before the outcome.
      const good = events.filter((entry) => entry.event.jobId === "job-good");
      const stages = good.flatMap((entry) => (entry.event.outcome.case === "progress" ? [[entry.subject, entry.event.outcome.value.stage, entry.event.outcome.value.fraction]] : []));
      // The fraction travels as a protobuf float: compared at float32 precision.
      assert.deepEqual(stages, (["decoded", "segmented", "refined"] as const).map((stage) => ["job.progress", stage, Math.fround(STAGE_FRACTIONS[stage])]));
      assert.equal(good.at(-1)?.subject, "job.succeeded", "the outcome comes after every stage report");
      const stored = await blobStore.get("out/job-good");
      assert.equal(stored?.contentType, "image/webp");
      assert.equal((await sharp(stored!.data).metadata()).hasAlpha, true);

      const failed = outcomes().find((entry) => entry.event.jobId === "job-bad");
      assert.equal(failed?.subject, "job.failed");
      assert.equal(failed.event.outcome.case, "failed");
      if (failed.event.outcome.case === "failed") {
        assert.equal(failed.event.outcome.value.userError, true);
        assert.equal(failed.event.outcome.value.reason, "unsupported_format");
        assert.match(failed.event.outcome.value.message, /PDF/);
      }
      assert.equal(await workQueue.depth(), 0);
      assert.equal(await blobStore.get("out/job-bad"), undefined);
    } finally {
      await consumer.drain();
      await subscription.drain();
      await Promise.all([workQueue.close(), eventBus.close(), blobStore.close()]);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

// Video tasks through the work consumer, on the in-process queue and (with NATS_URL) JetStream,
// with the real engine and ffmpeg: two workers on one queue whose ack wait (5 s) is shorter
// than the task, so only the worker's in-progress acks keep the other from taking it; frame
// progress as job.progress; the result streamed to the blob store; a cancel marker that stops
// ffmpeg at once; and never a temporary file left behind.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import pino from "pino";
import { createPorts, type Ports } from "../../common/adapters/index.ts";
import { deleteStream } from "../../common/adapters/jetstream-setup.ts";
import { SegmentTaskSchema, TaskEventSchema, TaskKind, type TaskEvent } from "../../common/gen/cutline/inference/v1/task_pb.ts";
import { VideoFormat } from "../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { cancelMarkerKeyOf } from "../../common/job-cancel-marker.ts";
import { mediaBinaries } from "../../common/video/ffmpeg-binaries.ts";
import { makeClip } from "../../common/video/video-clips.testing.ts";
import { testNatsUrl, uniqueName } from "../../../test/harness.ts";
import { loadInferenceConfig } from "../inference.config.ts";
import { createSegmentationEngine, type SegmentationEngine } from "../runtime/segmentation.engine.ts";
import { startSegmentConsumer, type SegmentConsumer } from "./segment.consumer.ts";
import { videoMattingRunnerOf } from "./video-task.consumer.ts";

const log = pino({ level: "silent" });
const natsUrl = await testNatsUrl();
const directory = mkdtempSync(join(tmpdir(), "cutline-video-consumer-"));
/**
 * Shorter than the task (the model takes seconds per frame on a CPU, and a clip has several), so
 * only `working()` keeps it from being redelivered; long enough that a loaded machine's stalls of
 * the event loop (seconds, at a load of 20 on 2 cores) do not let JetStream's own clock run out
 * between two in-progress acks (every 250 ms here).
 */
const ACK_WAIT_MS = 5000;
const TASK_TIMEOUT_MS = 240_000;
let engine: SegmentationEngine | undefined;

/** ffmpeg processes this process started that still run. */
function ffmpegChildren(): string[] {
  const listing = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" }).trim();
  return listing.split("\n").filter((line) => line.includes("ffmpeg"));
}

async function until(what: string, check: () => boolean, timeoutMs = TASK_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

before(async () => {
  engine = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_WARMUP_RUNS: "1" }), log);
  await engine.ready;
});

after(async () => {
  await engine?.close();
  rmSync(directory, { recursive: true, force: true });
});

for (const mode of ["in-process", "nats"] as const) {
  describe(`video tasks on the ${mode} work queue`, { skip: mode === "nats" && !natsUrl ? "NATS_URL is unset: the JetStream run needs a real NATS" : false }, () => {
    const namePrefix = uniqueName("video_consumer");
    const temporary = join(directory, `${mode}-temporary`);
    mkdirSync(temporary);
    let ports: Ports;
    const workers: SegmentConsumer[] = [];
    const events: TaskEvent[] = [];

    before(async () => {
      ports = await createPorts({ natsUrl: mode === "nats" ? natsUrl : undefined, namePrefix, dataDir: join(directory, mode), ackWaitMs: ACK_WAIT_MS, log });
      ports.eventBus.subscribe(
        async (event) => {
          events.push(fromBinary(TaskEventSchema, event.data));
        },
        { durableName: "video_consumer_spec", subjectFilter: "job.*" },
      );
      // Two workers on one queue, as two inference replicas would be.
      for (let worker = 0; worker < 2; worker += 1) {
        workers.push(
          await startSegmentConsumer({
            engine: engine!,
            ...ports,
            log,
            workingIntervalMs: 250,
            stageProgressMsMin: 0,
            video: { run: videoMattingRunnerOf(engine!, () => mediaBinaries()), temporaryDirectory: temporary, cancelPollMs: 100 },
          }),
        );
      }
    });

    after(async () => {
      for (const worker of workers) await worker.drain();
      await ports.close();
      if (mode === "nats") {
        const connection = await connect({ servers: natsUrl! });
        const jsm = await jetstreamManager(connection);
        for (const stream of [`${namePrefix}_work`, `${namePrefix}_video_work`, `${namePrefix}_events`, `OBJ_${namePrefix}_blobs`]) await deleteStream(jsm, stream);
        await connection.close();
      }
    });

    const enqueue = async (jobId: string, clip: string, videoDurationMs = 1000) => {
      await ports.blobStore.putFile(`inputs/${jobId}`, clip, { contentType: "video/mp4" });
      const task = create(SegmentTaskSchema, {
        jobId,
        kind: TaskKind.VIDEO,
        inputBlobKey: `inputs/${jobId}`,
        resultBlobKey: `results/${jobId}`,
        videoOptions: { format: VideoFormat.WEBM },
        videoDurationMs,
      });
      // The video queue, as the orchestrator enqueues a video: its messages are kept alive there.
      await ports.videoQueue.enqueue(toBinary(SegmentTaskSchema, task), { id: jobId });
    };
    const of = (jobId: string, outcome: TaskEvent["outcome"]["case"]) => events.filter((event) => event.jobId === jobId && event.outcome.case === outcome);

    test("one worker takes the task however long it runs past the ack wait; frames are reported; the result is stored; no temporary file stays", async () => {
      const jobId = `${mode}-whole`;
      await enqueue(jobId, makeClip(directory, `${mode}-whole`, { width: 96, height: 64, seconds: 1, rate: 4, audio: true }));
      await until("job.succeeded", () => of(jobId, "succeeded").length > 0);
      const started = of(jobId, "started").map((event) => (event.outcome.case === "started" ? event.outcome.value.deliveryCount : 0));
      assert.deepEqual(started, [1], "delivered once: the other worker never took it");
      const frames = of(jobId, "progress").flatMap((event) => (event.outcome.case === "progress" && event.outcome.value.framesTotal > 0 ? [event.outcome.value] : []));
      assert.ok(frames.length > 0, "frame progress was published");
      assert.ok(frames.every((frame) => frame.framesDone <= frame.framesTotal && frame.fraction <= 1));
      const succeeded = of(jobId, "succeeded")[0]!;
      assert.equal(succeeded.outcome.case === "succeeded" && succeeded.outcome.value.contentType, "video/webm");
      assert.equal((await ports.blobStore.get(`results/${jobId}`))?.contentType, "video/webm");
      assert.deepEqual(readdirSync(temporary), [], "the worker's temporary files are gone");
    });

    test("the job's cancel marker stops ffmpeg at once; nothing is published for the ended job and nothing stays on disk", async () => {
      const jobId = `${mode}-cancelled`;
      // All of an 8 s clip (33 frames, tens of seconds of model time): under the 1 s cap the others
      // take, its 5 frames could all be done before the test, on a busy machine, saw the first.
      await enqueue(jobId, makeClip(directory, `${mode}-cancelled`, { width: 96, height: 64, seconds: 8, rate: 4 }), 8000);
      await until("a frame", () => of(jobId, "progress").some((event) => event.outcome.case === "progress" && event.outcome.value.framesDone > 0));
      assert.ok(ffmpegChildren().length > 0, "ffmpeg is at work");
      await ports.blobStore.put(cancelMarkerKeyOf(jobId), new Uint8Array(), { contentType: "text/plain" });
      await until("ffmpeg stopped", () => ffmpegChildren().length === 0, 5000);
      // Once the engine settles: ffmpeg is gone already, the frames in the model take seconds each on a busy CPU.
      await until("temporary files removed", () => readdirSync(temporary).length === 0, 90_000);
      await new Promise((resolve) => setTimeout(resolve, 2 * ACK_WAIT_MS));
      assert.deepEqual([of(jobId, "succeeded").length, of(jobId, "failed").length], [0, 0], "the ended job gets no outcome");
      assert.equal(of(jobId, "started").length, 1, "terminated, not redelivered");
      assert.equal(await ports.blobStore.get(`results/${jobId}`), undefined);
    });
  });
}

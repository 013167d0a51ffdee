// Decoding stops at the duration the job was billed for, whatever the container declares or its
// streams carry: a WebM whose header says 1 s over 2 s of frames decodes 1 s of them. ffmpeg
// only, no model: these fail before a frame would reach it.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { VideoFormat, VideoOptionsSchema } from "../../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { mediaBinaries } from "../../../common/video/ffmpeg-binaries.ts";
import { makeClip } from "../../../common/video/video-clips.testing.ts";
import { probeVideo } from "../../../common/video/video-probe.ts";
import { FfmpegProcess } from "../../../common/video/ffmpeg.process.ts";
import { encoderArgs, videoEncodingOf } from "./video.encoder.ts";
import { decodeCapOf, decoderArgs, framesOf } from "./video.pipeline.ts";

const binaries = mediaBinaries();
const directory = mkdtempSync(join(tmpdir(), "cutline-video-cap-"));
after(() => rmSync(directory, { recursive: true, force: true }));

/** The clip with its Segment Info Duration (EBML 0x4489, an 8-byte float in TimecodeScale units, ms) rewritten. */
function withDeclaredDuration(path: string, durationMs: number): string {
  const bytes = readFileSync(path);
  const at = bytes.indexOf(Buffer.from([0x44, 0x89, 0x88]));
  assert.ok(at > 0, "the WebM carries an 8-byte Duration element");
  bytes.writeDoubleBE(durationMs, at + 3);
  const lying = path.replace(/\.webm$/, "-lying.webm");
  writeFileSync(lying, bytes);
  return lying;
}

async function decodedFrames(inputPath: string, rate: string, cap: ReturnType<typeof decodeCapOf> | undefined): Promise<number> {
  const decoder = new FfmpegProcess(binaries.ffmpeg.path, decoderArgs({ inputPath, rate, width: 64, height: 48, cap }));
  let frames = 0;
  for await (const frame of framesOf(decoder.child.stdout, 64 * 48 * 4)) if (frame.length > 0) frames++;
  assert.equal(await decoder.closed, 0, decoder.errorOutput);
  return frames;
}

describe("the decode cap", () => {
  test("-t and -frames:v ceil(seconds × rate) + 1 on the decoder, -t on the encoder's audio input", () => {
    const cap = decodeCapOf(1000, { numerator: 30000, denominator: 1001 });
    assert.deepEqual(cap, { seconds: 1, frames: 31 });
    const args = decoderArgs({ inputPath: "in", rate: "30000/1001", width: 64, height: 48, cap });
    assert.deepEqual(args.slice(0, 4), ["-t", "1", "-i", "in"], "-t before -i: an input option");
    assert.equal(args[args.indexOf("-frames:v") + 1], "31");
    const format = videoEncodingOf(create(VideoOptionsSchema, { format: VideoFormat.WEBM }));
    const encoder = encoderArgs({ format, width: 64, height: 48, rate: "30000/1001", audioFrom: "in", audioSecondsMax: 1, outputPath: "out" });
    assert.deepEqual(encoder.slice(encoder.indexOf("in") - 3, encoder.indexOf("in") + 1), ["-t", "1", "-i", "in"]);
  });

  test("a WebM whose header says 1 s over 2 s of frames: probed at 1 s, decoded at 1 s (11 frames, not 20)", async () => {
    const honest = makeClip(directory, "two-seconds", { width: 64, height: 48, seconds: 2, rate: 10, container: "webm" });
    const lying = withDeclaredDuration(honest, 1000);
    const probe = await probeVideo(lying, { binaries });
    assert.equal(probe.durationMs, 1000, "the header's duration is what the gateway bills");
    assert.equal(await decodedFrames(lying, "10/1", undefined), 20, "the frames are all there");
    assert.ok((await decodedFrames(lying, "10/1", decodeCapOf(probe.durationMs, probe.frameRate))) <= 11, "capped at the billed second");
  });
});

// The probe the gateway quotes from, on clips ffmpeg makes here: containers sniffed from bytes,
// size after rotation, variable frame rate, audio, and each refusal with its reason.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import sharp from "sharp";
import { mediaBinaries } from "./ffmpeg-binaries.ts";
import { makeClip } from "./video-clips.testing.ts";
import { sniffVideoContainer } from "./video-format.sniffer.ts";
import { probeVideo } from "./video-probe.ts";
import { VideoError, type VideoErrorReason } from "./video.errors.ts";

const directory = mkdtempSync(join(tmpdir(), "cutline-video-probe-"));
after(() => rmSync(directory, { recursive: true, force: true }));
const binaries = mediaBinaries();
const withoutFfprobe = { ffmpeg: binaries.ffmpeg, ffprobe: undefined };

const refusedWith = (reason: VideoErrorReason) => (error: unknown) => error instanceof VideoError && error.reason === reason;

describe("media binaries", () => {
  test("ffmpeg and ffprobe resolve from the installed packages, each with its version", () => {
    assert.match(binaries.ffmpeg.version, /^ffmpeg version /);
    assert.ok(["ffmpeg-static", "@ffmpeg-installer/ffmpeg"].includes(binaries.ffmpeg.source), binaries.ffmpeg.source);
    assert.match(binaries.ffprobe?.version ?? "", /^ffprobe version /);
  });

  test("FFMPEG_PATH and FFPROBE_PATH win over the packages", () => {
    const named = mediaBinaries({ FFMPEG_PATH: binaries.ffmpeg.path, FFPROBE_PATH: binaries.ffprobe!.path });
    assert.equal(named.ffmpeg.source, "FFMPEG_PATH");
    assert.equal(named.ffprobe?.source, "FFPROBE_PATH");
    assert.throws(() => mediaBinaries({ FFMPEG_PATH: join(directory, "no-such-ffmpeg") }));
  });
});

describe("sniffVideoContainer", () => {
  test("MP4, MOV and WebM from their bytes; images and Matroska are not videos", async () => {
    const head = (path: string) => new Uint8Array(readFileSync(path).subarray(0, 64));
    assert.equal(sniffVideoContainer(head(makeClip(directory, "sniff", { seconds: 0.2 }))), "mp4");
    assert.equal(sniffVideoContainer(head(makeClip(directory, "sniff", { seconds: 0.2, container: "mov" }))), "mov");
    assert.equal(sniffVideoContainer(head(makeClip(directory, "sniff", { seconds: 0.2, container: "webm" }))), "webm");
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#fff" } }).png().toBuffer();
    assert.equal(sniffVideoContainer(png), undefined);
    const matroska = Uint8Array.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x88, ...Buffer.from("matroska")]);
    assert.equal(sniffVideoContainer(matroska), undefined);
    const heic = Uint8Array.from([0, 0, 0, 24, ...Buffer.from("ftypheic"), 0, 0, 0, 0, ...Buffer.from("mif1heic")]);
    assert.equal(sniffVideoContainer(heic), undefined);
    assert.equal(sniffVideoContainer(new Uint8Array()), undefined);
  });
});

describe("probeVideo", () => {
  for (const [label, options] of [["ffprobe", {}], ["ffmpeg alone", { binaries: withoutFfprobe }]] as const) {
    test(`${label}: duration, rate, size, audio of an MP4 with AAC`, async () => {
      const probe = await probeVideo(makeClip(directory, "audio", { audio: true }), options);
      assert.equal(probe.container, "mp4");
      assert.ok(Math.abs(probe.durationMs - 1000) <= 30, `${probe.durationMs} ms`);
      assert.deepEqual([probe.width, probe.height, probe.rotationDegrees], [160, 120, 0]);
      assert.deepEqual(probe.frameRate, { numerator: 25, denominator: 1 });
      assert.equal(probe.variableFrameRate, false);
      assert.ok(Math.abs(probe.frameCountEstimate - 25) <= 1, String(probe.frameCountEstimate));
      assert.deepEqual([probe.hasAudio, probe.videoCodec, probe.audioCodec], [true, "h264", "aac"]);
    });

    test(`${label}: a phone clip's displayed size is its stored size turned`, async () => {
      const probe = await probeVideo(makeClip(directory, "phone", { rotateDegrees: 90 }), options);
      assert.ok([90, 270].includes(probe.rotationDegrees), String(probe.rotationDegrees));
      assert.deepEqual([probe.codedWidth, probe.codedHeight, probe.width, probe.height], [160, 120, 120, 160]);
    });

    test(`${label}: a variable-rate clip is reported as such, at its average rate`, async () => {
      const probe = await probeVideo(makeClip(directory, "variable", { variableRate: true, seconds: 2 }), options);
      assert.equal(probe.variableFrameRate, true);
      // 25 frames in the first second, 25 more three times apart: about 4 s, 50 frames.
      assert.ok(Math.abs(probe.durationMs - 4000) < 150, `${probe.durationMs} ms`);
      assert.ok(Math.abs(probe.frameCountEstimate - 50) <= 2, String(probe.frameCountEstimate));
    });
  }

  test("WebM with Opus, and MOV", async () => {
    const webm = await probeVideo(makeClip(directory, "webm", { container: "webm", audio: true }));
    assert.deepEqual([webm.container, webm.videoCodec, webm.audioCodec], ["webm", "vp9", "opus"]);
    const mov = await probeVideo(makeClip(directory, "mov", { container: "mov" }));
    assert.deepEqual([mov.container, mov.hasAudio], ["mov", false]);
  });

  test("refusals: an image, a truncated file, random bytes after a video header, audio only", async () => {
    const png = join(directory, "image.mp4");
    writeFileSync(png, await sharp({ create: { width: 8, height: 8, channels: 3, background: "#fff" } }).png().toBuffer());
    await assert.rejects(probeVideo(png), refusedWith("unsupported_format"));
    const whole = readFileSync(makeClip(directory, "whole", { seconds: 1 }));
    // The moov box sits at the end (no faststart): the first half has no index of its frames.
    const truncated = join(directory, "truncated.mp4");
    writeFileSync(truncated, whole.subarray(0, whole.length >> 1));
    for (const options of [{}, { binaries: withoutFfprobe }]) await assert.rejects(probeVideo(truncated, options), refusedWith("video_corrupt"));
    const garbage = join(directory, "garbage.webm");
    writeFileSync(garbage, Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x42, 0x82, 0x84]), Buffer.from("webm"), Buffer.alloc(4096, 7)]));
    await assert.rejects(probeVideo(garbage), refusedWith("video_corrupt"));
    const audioOnly = join(directory, "audio-only.mp4");
    execFileSync(binaries.ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", audioOnly]);
    for (const options of [{}, { binaries: withoutFfprobe }]) await assert.rejects(probeVideo(audioOnly, options), refusedWith("video_no_stream"));
  });

  test("a probe past its time limit is killed and refused; an aborted probe rejects at once", async () => {
    const clip = makeClip(directory, "slow", { seconds: 0.2 });
    await assert.rejects(probeVideo(clip, { timeoutMs: 1 }), (error: unknown) => refusedWith("video_corrupt")(error) && /probe time limit \(1 ms\)/.test((error as Error).message));
    const controller = new AbortController();
    const probing = probeVideo(clip, { signal: controller.signal });
    controller.abort(new Error("cancelled by the caller"));
    await assert.rejects(probing, /cancelled by the caller/);
  });
});

// The video options a job is refused for before any upload is held: what the RPC and REST let
// through must be what inference accepts, or the caller pays a hold and a queue slot for a failure.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { reasonOf } from "../common/errors.ts";
import { Quality } from "../common/gen/cutline/inference/v1/quality_pb.ts";
import { VideoFormat } from "../common/gen/cutline/inference/v1/video_options_pb.ts";
import { videoOptionsFrom } from "./handlers/video.routes.ts";
import { videoOptionsOf, videoOptionsProblem } from "./video-jobs.ts";

test("videoOptionsProblem refuses a quality the enum does not know, naming the allowed ones, and takes every known one", () => {
  assert.equal(videoOptionsProblem(videoOptionsOf({ quality: 7 as Quality }), false), "quality 7 is unknown; use one of fast, balanced, best");
  for (const quality of [Quality.UNSPECIFIED, Quality.FAST, Quality.BALANCED, Quality.BEST]) {
    assert.equal(videoOptionsProblem(videoOptionsOf({ quality, format: VideoFormat.MOV }), false), undefined, String(quality));
  }
});

test("videoOptionsFrom parses quality as the image routes do: any case, absent is unspecified, anything else names the allowed values", () => {
  const from = (query: string) => videoOptionsFrom((name) => new URLSearchParams(query).get(name) ?? undefined);
  assert.equal(from("quality=BEST").quality, Quality.BEST);
  assert.equal(from("").quality, Quality.UNSPECIFIED);
  assert.throws(
    () => from("quality=max"),
    (error: unknown) => error instanceof ConnectError && reasonOf(error) === "invalid_option" && error.rawMessage === 'quality "max" is unknown; use one of fast, balanced, best',
  );
});

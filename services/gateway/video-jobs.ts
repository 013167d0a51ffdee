// The gateway's part of every video job (POST /v1/video/matting, VideoService.SubmitVideo): the
// upload, already on disk, is checked before any hold (its bytes against the plan, its container
// sniffed, ffprobe's duration, size, rotation and audio, the plan's duration), then quoted per
// started second at the size it will be processed, held, stored (streamed) and submitted. Video
// jobs are asynchronous only: the caller gets the queued job and watches it like any other.
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createHash, randomUUID } from "node:crypto";
import { BillingService, HoldStatus, Operation, Pool } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { TaskKind } from "../common/gen/cutline/inference/v1/task_pb.ts";
import { Quality } from "../common/gen/cutline/inference/v1/quality_pb.ts";
import { VideoFormat, VideoOptionsSchema, type VideoOptions } from "../common/gen/cutline/inference/v1/video_options_pb.ts";
import type { Job, OrchestratorService } from "../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { reasonError } from "../common/errors.ts";
import { sniffImageFormat } from "../common/images/image-format.sniffer.ts";
import { qualityNameOf, qualityProblem } from "../common/images/quality.ts";
import type { UploadInspector } from "../common/images/upload.inspector.ts";
import type { Logger } from "../common/logging.ts";
import { checkedWebhookUrl } from "../common/outbound.ts";
import type { BlobStore } from "../common/ports/blob-store.ts";
import type { MediaBinaries } from "../common/video/ffmpeg-binaries.ts";
import { headOfFile, sniffVideoContainer } from "../common/video/video-format.sniffer.ts";
import { VIDEO_CONTAINER_CONTENT_TYPES } from "../common/video/video-formats.ts";
import { frameRateValue, probeVideo, VIDEO_FRAME_RATE_MAX, type VideoProbe } from "../common/video/video-probe.ts";
import { processedVideoSize } from "../common/video/video-size.ts";
import { VideoError } from "../common/video/video.errors.ts";
import { videoLimitsOf, type VideoLimits } from "./domain/video-limits.ts";
import { deleteUnsubmittedInputs, releaseAfterFailedSubmit, storage, submitSurelyFailed, usageMemberOf, type Admission } from "./image-jobs.ts";

export interface VideoJobsOptions {
  /** Largest video upload the server takes, whatever the plan (VIDEO_BYTES_MAX, bytes). */
  videoBytesMax: number;
  /** Largest background image (UPLOAD_BYTES_MAX, bytes). */
  uploadBytesMax: number;
  /** Hold lifetime (HOLD_TTL_SECONDS); the job's progress reports extend it while it runs. */
  holdTtlSeconds: number;
  /** How long ffprobe may take on one upload (ms); past it the video is refused as corrupt. @default 15000 ms */
  probeTimeoutMs?: number;
  /** The ffmpeg and ffprobe the gateway probes with. */
  binaries: () => MediaBinaries;
}

/** A video's price, and what it was priced by. */
export interface VideoQuote {
  costMillicredits: bigint;
  priceBookVersion: string;
  probe: VideoProbe;
  /** The size the video is processed, and priced, at (pixels). */
  processed: { width: number; height: number };
  quality: string;
}

/** A video upload on disk, as the route or the RPC received it. */
export interface VideoInput {
  /** The file holding the video; the caller removes it after the submit. */
  path: string;
  bytes: number;
  /** SHA-256 (hex) of the video's bytes, computed as they were written. */
  sha256: string;
}

export interface VideoSubmit {
  options: VideoOptions;
  /** The caller's Idempotency-Key; "" for none. */
  idempotencyKey: string;
  webhookUrl?: string;
  /** The MP4 output's background image, checked like an image upload. */
  backgroundImage?: Uint8Array;
}

/**
 * SHA-256 (hex) of what a video request asks for: the video (by its own hash), the background
 * image and the options. A replay of an idempotency key must carry the same.
 */
export function videoRequestFingerprint(videoSha256: string, options: VideoOptions, backgroundImage: Uint8Array | undefined): string {
  const hash = createHash("sha256");
  const without = clone(VideoOptionsSchema, options);
  without.backgroundImage = new Uint8Array();
  for (const part of [Buffer.from(videoSha256), backgroundImage ?? new Uint8Array(), toBinary(VideoOptionsSchema, without)]) {
    hash.update(`${part.byteLength}:`).update(part);
  }
  return hash.digest("hex");
}

/** What the encoders take: "#rrggbb" or "#rgb", the # optional (REST and RPC alike). */
export const HEX_COLOUR = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i;

/** Options a video job cannot have, named; undefined when they are fine. Checked before the hold: inference would refuse them after it. */
export function videoOptionsProblem(options: VideoOptions, hasBackgroundImage: boolean): string | undefined {
  if (!(options.format in VideoFormat)) return `format ${options.format} is not one of webm, mov, mp4, mask`;
  const quality = qualityProblem(options.quality);
  if (quality !== undefined) return quality;
  if (options.backgroundColor !== "" && !HEX_COLOUR.test(options.backgroundColor)) return `bg_color "${options.backgroundColor}" is not a hex colour like "ffffff" or "#fff"`;
  const mp4 = options.format === VideoFormat.MP4;
  if (options.backgroundColor !== "" && !mp4) return "bg_color applies to format=mp4 only: WebM and MOV keep the alpha channel, and a mask has no background";
  if (hasBackgroundImage && !mp4) return "bg_image_file applies to format=mp4 only: WebM and MOV keep the alpha channel, and a mask has no background";
  if (hasBackgroundImage && options.backgroundColor !== "") return "send either bg_color or bg_image_file, not both";
  return undefined;
}

export class VideoJobs {
  constructor(
    private readonly billing: Client<typeof BillingService>,
    private readonly orchestrator: Client<typeof OrchestratorService>,
    private readonly blobs: BlobStore,
    private readonly inspect: UploadInspector,
    private readonly log: Logger,
    private readonly options: VideoJobsOptions,
  ) {}

  /** The most bytes of video this admission may upload, and the limit's name for the refusal. */
  bytesLimitOf(admission: Admission): { bytesMax: number; limitName: string } {
    const plan = videoLimitsOf(admission.plan);
    if (plan.bytesMax < this.options.videoBytesMax) {
      return { bytesMax: plan.bytesMax, limitName: `the ${admission.plan?.name ?? plan.planClass} plan's video limit of ${plan.bytesMax} bytes` };
    }
    return { bytesMax: this.options.videoBytesMax, limitName: `the server's video limit of ${this.options.videoBytesMax} bytes (VIDEO_BYTES_MAX)` };
  }

  /**
   * What the video would cost, by the same checks and pricing as `submit` (options, bytes,
   * container, probe, plan limits, the processed size); holds nothing (POST /v1/quote).
   */
  async quote(admission: Admission, input: VideoInput, request: Pick<VideoSubmit, "options" | "backgroundImage">, signal?: AbortSignal): Promise<VideoQuote> {
    const background = request.backgroundImage && request.backgroundImage.byteLength > 0 ? request.backgroundImage : undefined;
    const problem = videoOptionsProblem(request.options, background !== undefined);
    if (problem !== undefined) throw reasonError(Code.InvalidArgument, "invalid_option", problem);
    const limits = videoLimitsOf(admission.plan);
    const probe = await this.#checked(admission, input, limits, signal);
    const processed = processedVideoSize(probe, limits.longestSidePixels);
    // Known: videoOptionsProblem refused any other value above.
    const quality = qualityNameOf(request.options.quality)!;
    const quote = await this.billing.quote({
      accountId: admission.owner.accountId,
      operation: Operation.VIDEO_REMOVE_BACKGROUND,
      pixels: BigInt(processed.width * processed.height),
      videoMilliseconds: probe.durationMs,
      quality,
    });
    return { costMillicredits: quote.costMillicredits, priceBookVersion: quote.priceBookVersion, probe, processed, quality };
  }

  /** Checks, quotes, holds, stores and submits; the queued job. Every refusal comes before the hold. */
  async submit(admission: Admission, input: VideoInput, request: VideoSubmit, signal?: AbortSignal): Promise<Job> {
    const { owner, plan } = admission;
    // The member the usage is attributed to, as for images (the key's member, else the account's owner).
    const memberId = admission.memberId ?? usageMemberOf(owner, undefined);
    const background = request.backgroundImage && request.backgroundImage.byteLength > 0 ? request.backgroundImage : undefined;
    const webhookUrl = request.webhookUrl ? checkedWebhookUrl(request.webhookUrl) : "";
    const quote = await this.quote(admission, input, request, signal);
    const { probe, processed, quality } = quote;
    const backgroundInfo = background ? await this.#inspectBackground(background) : undefined;
    const key = request.idempotencyKey || randomUUID();
    const fingerprint = request.idempotencyKey ? videoRequestFingerprint(input.sha256, request.options, background) : "";
    const hold = await this.billing.reserve({
      accountId: owner.accountId,
      pool: Pool.API,
      amountMillicredits: quote.costMillicredits,
      // As for images: the content is part of the hold's key, so a replay with another video gets
      // a hold (and an input blob) of its own, released when the orchestrator refuses the replay.
      idempotencyKey: fingerprint ? `video:${key}:${fingerprint}` : `video:${key}`,
      holdTtlSeconds: this.options.holdTtlSeconds,
      apiKeyId: owner.keyId,
      memberId,
      description: `video background removal ${Math.ceil(probe.durationMs / 1000)} s ${processed.width}x${processed.height} ${probe.container} (${quality})`,
      priceBookVersion: quote.priceBookVersion,
    });
    const inputBlobKey = `inputs/${hold.holdId}`;
    const backgroundImageBlobKey = backgroundInfo ? `${inputBlobKey}/background` : "";
    if (!(hold.replayed && hold.status === HoldStatus.CAPTURED)) {
      try {
        await storage(() => this.blobs.putFile(inputBlobKey, input.path, { contentType: VIDEO_CONTAINER_CONTENT_TYPES[probe.container] }), "storing the video");
        if (background && backgroundInfo) {
          await storage(() => this.blobs.put(backgroundImageBlobKey, background, { contentType: `image/${backgroundInfo.format}` }), "storing the background image");
        }
      } catch (error) {
        await this.#release(hold.holdId);
        throw error;
      }
    }
    const jobOptions = clone(VideoOptionsSchema, request.options);
    jobOptions.backgroundImage = new Uint8Array();
    try {
      const submitted = await this.orchestrator.submitJob({
        accountId: owner.accountId,
        idempotencyKey: key,
        inputBlobKey,
        backgroundImageBlobKey,
        kind: TaskKind.VIDEO,
        videoOptions: jobOptions,
        videoDurationMs: probe.durationMs,
        holdId: hold.holdId,
        heldMillicredits: hold.amountMillicredits,
        highPriority: plan?.priorityLane === "high",
        longestSideMax: Math.max(processed.width, processed.height),
        webhookUrl,
        requestFingerprint: fingerprint,
        apiKeyId: owner.keyId,
        memberId,
      });
      if (!submitted.job) throw new Error("orchestrator returned no job");
      return submitted.job;
    } catch (error) {
      // As for images: only an answer that says nothing was recorded returns the credits now.
      if (submitSurelyFailed(error)) {
        await this.#release(hold.holdId);
        if (!hold.replayed) await deleteUnsubmittedInputs(this.blobs, this.log, [inputBlobKey, backgroundImageBlobKey]);
      } else this.log.warn({ err: error, holdId: hold.holdId }, "video submit outcome unknown: the hold is left to the job or to billing's sweeper");
      throw error;
    }
  }

  /** Bytes, container, probe and duration, against the plan and the server; refusals name the limit. */
  async #checked(admission: Admission, input: VideoInput, limits: VideoLimits, signal: AbortSignal | undefined): Promise<VideoProbe> {
    if (input.bytes === 0) throw reasonError(Code.InvalidArgument, "empty_video", "the video is empty");
    const { bytesMax, limitName } = this.bytesLimitOf(admission);
    if (input.bytes > bytesMax) throw reasonError(Code.InvalidArgument, "too_many_bytes", `the video is ${input.bytes} bytes; ${limitName}`);
    const head = await headOfFile(input.path);
    if (sniffVideoContainer(head) === undefined) {
      const image = sniffImageFormat(head);
      if (image.accepted) {
        throw reasonError(Code.InvalidArgument, "image_not_accepted", `this is a ${image.format.toUpperCase()} image, and this route takes videos (MP4, MOV, WebM): post images to POST /v1/matting`);
      }
      throw reasonError(Code.InvalidArgument, "unsupported_format", "the file is not an MP4, MOV or WebM video (judged by its bytes, not its name); upload one of those");
    }
    let probe: VideoProbe;
    try {
      probe = await probeVideo(input.path, { timeoutMs: this.options.probeTimeoutMs, signal, binaries: this.options.binaries() });
    } catch (error) {
      if (error instanceof VideoError) throw reasonError(Code.InvalidArgument, error.reason, error.message, { cause: error.cause ?? error });
      throw error;
    }
    if (frameRateValue(probe.frameRate) > VIDEO_FRAME_RATE_MAX) {
      throw reasonError(
        Code.InvalidArgument,
        "video_frame_rate_too_high",
        `the video runs at ${frameRateValue(probe.frameRate).toFixed(2)} fps; the limit is ${VIDEO_FRAME_RATE_MAX} fps (VIDEO_FRAME_RATE_MAX): convert it to ${VIDEO_FRAME_RATE_MAX} fps or less`,
      );
    }
    if (probe.durationMs > limits.secondsMax * 1000) {
      const planName = admission.plan?.name ?? limits.planClass;
      throw reasonError(
        Code.InvalidArgument,
        "video_too_long",
        `the video is ${(probe.durationMs / 1000).toFixed(1)} s long; the ${planName} plan takes videos up to ${limits.secondsMax} s (its video seconds limit): trim it, or change plan`,
      );
    }
    return probe;
  }

  async #inspectBackground(image: Uint8Array): Promise<{ format: string }> {
    if (image.byteLength > this.options.uploadBytesMax) {
      throw reasonError(Code.InvalidArgument, "too_many_bytes", `the background_image is ${image.byteLength} bytes; the upload limit is ${this.options.uploadBytesMax} bytes (UPLOAD_BYTES_MAX)`);
    }
    try {
      return await this.inspect(image);
    } catch (error) {
      const refusal = ConnectError.from(error);
      throw new ConnectError(`background_image: ${refusal.rawMessage}`, refusal.code, refusal.metadata, undefined, refusal.cause ?? error);
    }
  }

  async #release(holdId: string): Promise<void> {
    await releaseAfterFailedSubmit(this.billing, this.log, holdId);
  }
}

/** The video options of a request whose format, colour and quality were given by name (REST). */
export function videoOptionsOf(fields: { format?: VideoFormat; backgroundColor?: string; quality?: Quality; keepAudio?: boolean }): VideoOptions {
  return create(VideoOptionsSchema, {
    format: fields.format ?? VideoFormat.WEBM,
    backgroundColor: fields.backgroundColor ?? "",
    quality: fields.quality ?? Quality.UNSPECIFIED,
    ...(fields.keepAudio === undefined ? {} : { keepAudio: fields.keepAudio }),
  });
}

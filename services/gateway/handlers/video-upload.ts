// The body of POST /v1/video/matting, streamed to a temporary file as it arrives: a multipart
// form (the video in `video_file`, options and `bg_image_file` beside it) or the raw video. The
// video's bytes are counted against the caller's limit as they come, and the upload is refused
// the moment it passes it; they are hashed on the way (the idempotency fingerprint), and never
// held whole in memory. The form is parsed by busboy as it streams in, under the VIDEO_FORM_*
// limits below (parts, files, field bytes, header lines per part).
import { Code } from "@connectrpc/connect";
import busboy, { type Busboy } from "busboy";
import { createHash } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reasonError } from "../../common/errors.ts";
import type { HttpRequest } from "../../common/server.ts";
import type { VideoInput } from "../video-jobs.ts";
import { ClientGone, isMultipart, requireBoundary } from "./rest-support.ts";

/** Most bytes of all the form's text fields together (format, bg_color, quality, webhook_url, …). */
export const VIDEO_FORM_FIELD_BYTES_MAX = 64 * 1024;
/** Most parts of the form (text fields and files together), and most text fields. */
export const VIDEO_FORM_PARTS_MAX = 32;
/** Most file parts of the form: the video and the background image. */
export const VIDEO_FORM_FILES_MAX = 2;
/** Most header lines read per part (Content-Disposition, Content-Type, …); busboy drops the rest, and refuses a part's header block past 16 KiB. */
export const VIDEO_FORM_PART_HEADERS_MAX = 8;
/** The form fields that carry the video. */
const VIDEO_FIELDS = new Set(["video_file", "video"]);
const BACKGROUND_FIELD = "bg_image_file";
const RAW_VIDEO = /^(video\/[\w.+-]+|application\/octet-stream)\s*(;|$)/i;

export interface VideoUploadLimits {
  /** The video's byte limit and how its refusal names it. */
  videoBytesMax: number;
  videoLimitName: string;
  /** The background image's byte limit (UPLOAD_BYTES_MAX). */
  backgroundBytesMax: number;
}

export interface VideoUpload {
  video: VideoInput;
  /** The form's text fields (empty for a raw body: options come from the query). */
  fields: Map<string, string>;
  backgroundImage: Uint8Array | undefined;
  /** Removes the temporary file; idempotent. */
  cleanUp(): Promise<void>;
}

/** The refusal of an upload the gateway's disk could not take (ENOSPC, EMFILE, EACCES): a server fault, retried. */
function diskRefusal(error: unknown): Error {
  return reasonError(Code.Unavailable, "storage_unavailable", "the upload could not be written to the gateway's disk; retry shortly", { cause: error });
}

/**
 * The video's file, written with back-pressure, counted and hashed. Its stream always has an
 * 'error' listener: a disk error (ENOSPC, EMFILE) between two writes is kept and thrown by the
 * next write, ready() or close(), never left to crash the process as an unhandled 'error'.
 */
export class VideoFile {
  readonly hash = createHash("sha256");
  bytes = 0;
  readonly #stream: WriteStream;
  #blocked = false;
  #failure: Error | undefined;

  constructor(
    readonly path: string,
    private readonly limits: VideoUploadLimits,
  ) {
    this.#stream = createWriteStream(path);
    this.#stream.on("error", (error) => {
      this.#failure ??= diskRefusal(error);
    });
  }

  /** The refusal of a video past its limit. */
  refusal(): Error {
    return reasonError(Code.InvalidArgument, "too_many_bytes", `the video is more than ${this.limits.videoBytesMax} bytes; ${this.limits.videoLimitName}`);
  }

  /** Writes the chunk; false when the file asks to wait for ready() before the next. */
  write(chunk: Uint8Array): boolean {
    if (this.#failure !== undefined) throw this.#failure;
    this.bytes += chunk.byteLength;
    if (this.bytes > this.limits.videoBytesMax) throw this.refusal();
    this.hash.update(chunk);
    if (!this.#stream.write(chunk)) this.#blocked = true;
    return !this.#blocked;
  }

  /** Resolves once the file can take more (at once when it can). */
  async ready(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    if (!this.#blocked) return;
    this.#blocked = false;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.#stream.off("error", onError);
        resolve();
      };
      const onError = (error: Error) => {
        this.#stream.off("drain", onDrain);
        reject(diskRefusal(error));
      };
      this.#stream.once("drain", onDrain).once("error", onError);
    });
  }

  async close(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#stream.closed) return;
    await new Promise<void>((resolve, reject) => this.#stream.end((error?: Error | null) => (error ? reject(this.#failure ?? diskRefusal(error)) : resolve())));
    if (this.#failure !== undefined) throw this.#failure;
  }

  destroy(): void {
    this.#stream.destroy();
  }
}

/** Bytes kept in memory up to a limit, or a refusal naming it. */
function bounded(bytesMax: number, refusal: () => Error): { chunks: Buffer[]; add(chunk: Uint8Array): void; bytes(): Buffer } {
  const chunks: Buffer[] = [];
  let total = 0;
  return {
    chunks,
    add(chunk) {
      total += chunk.byteLength;
      if (total > bytesMax) throw refusal();
      chunks.push(Buffer.from(chunk));
    },
    bytes: () => Buffer.concat(chunks),
  };
}

/**
 * Reads the request to its end, handing each chunk to `consume`; waits for `ready` between
 * chunks (the file's back-pressure). Read from the stream's events, as readBody does, so a
 * refusal mid-body still reaches the client (the answer then closes the connection).
 */
function receive(request: HttpRequest, consume: (chunk: Buffer) => void, ready: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    if (request.destroyed) {
      reject(new ClientGone("the client went away before its body was read"));
      return;
    }
    let received = 0;
    const stop = () => {
      request.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
      request.pause();
    };
    const onData = (chunk: Buffer) => {
      received += chunk.byteLength;
      try {
        consume(chunk);
      } catch (error) {
        stop();
        reject(error);
        return;
      }
      request.pause();
      ready().then(
        () => request.resume(),
        (error: unknown) => {
          stop();
          reject(error);
        },
      );
    };
    const onEnd = () => {
      stop();
      resolve();
    };
    const onGone = (error?: unknown) => {
      stop();
      reject(new ClientGone(`the client went away after ${received} bytes of the body`, { cause: error }));
    };
    request.on("data", onData).on("end", onEnd).on("error", onGone).on("close", onGone);
  });
}

/**
 * The upload on disk under a new temporary folder. A multipart form must carry the video in
 * `video_file`; any other body must be the raw video (video/* or application/octet-stream).
 * On any refusal the temporary file is already gone.
 */
export async function readVideoUpload(request: HttpRequest, headers: Headers, limits: VideoUploadLimits): Promise<VideoUpload> {
  const contentType = headers.get("content-type") ?? "";
  const multipart = isMultipart(contentType);
  if (multipart) requireBoundary(contentType);
  else if (!RAW_VIDEO.test(contentType)) {
    throw reasonError(
      Code.InvalidArgument,
      "invalid_request",
      "send the video as multipart/form-data in the field video_file, or as the raw body with Content-Type video/* or application/octet-stream (options in the query)",
    );
  }
  const declared = headers.get("content-length");
  const bodyBytesMax = limits.videoBytesMax + (multipart ? limits.backgroundBytesMax + VIDEO_FORM_FIELD_BYTES_MAX : 0);
  if (declared !== null && Number(declared) > bodyBytesMax) {
    throw reasonError(Code.InvalidArgument, "too_many_bytes", `the request declares ${declared} bytes; ${limits.videoLimitName}${multipart ? ", plus the background image and form fields" : ""}`);
  }
  const directory = await mkdtemp(join(tmpdir(), "cutline-upload-"));
  const cleanUp = () => rm(directory, { recursive: true, force: true });
  const file = new VideoFile(join(directory, "video"), limits);
  try {
    const { fields, backgroundImage, sawVideo } = multipart ? await receiveForm(request, contentType, file, limits) : await receiveRaw(request, file);
    await file.close();
    if (!sawVideo) throw reasonError(Code.InvalidArgument, "missing_video", "the form has no video_file field: send the video in it");
    return { video: { path: file.path, bytes: file.bytes, sha256: file.hash.digest("hex") }, fields, backgroundImage, cleanUp };
  } catch (error) {
    file.destroy();
    await cleanUp();
    throw error;
  }
}

async function receiveRaw(request: HttpRequest, file: VideoFile) {
  await receive(
    request,
    (chunk) => void file.write(chunk),
    () => file.ready(),
  );
  return { fields: new Map<string, string>(), backgroundImage: undefined, sawVideo: true };
}

/** Maps a busboy parse error to the caller's answer. */
function malformed(error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  return reasonError(Code.InvalidArgument, "malformed_multipart", `the body does not parse as multipart/form-data: ${message}`, { cause: error });
}

/**
 * The form parsed by busboy as the request streams in: the video to `file` (with its
 * back-pressure), the background image and the text fields kept in memory under their limits.
 * Any refusal, parse error or client reset stops reading at once (the request is unpiped and
 * paused, busboy destroyed) and rejects; the caller removes the temporary file.
 */
function receiveForm(request: HttpRequest, contentType: string, file: VideoFile, limits: VideoUploadLimits) {
  return new Promise<{ fields: Map<string, string>; backgroundImage: Uint8Array | undefined; sawVideo: boolean }>((resolve, reject) => {
    if (request.destroyed) {
      reject(new ClientGone("the client went away before its body was read"));
      return;
    }
    let parser: Busboy;
    try {
      parser = busboy({
        headers: { "content-type": contentType },
        limits: {
          // busboy's own bounds, backed by the exact per-file counters below (which name the limit).
          fileSize: Math.max(limits.videoBytesMax, limits.backgroundBytesMax) + 1,
          files: VIDEO_FORM_FILES_MAX,
          fields: VIDEO_FORM_PARTS_MAX,
          // busboy reports 'partsLimit' when the count reaches it: one more, so MAX parts pass.
          parts: VIDEO_FORM_PARTS_MAX + 1,
          fieldSize: VIDEO_FORM_FIELD_BYTES_MAX,
          headerPairs: VIDEO_FORM_PART_HEADERS_MAX,
        },
      });
    } catch (error) {
      reject(malformed(error));
      return;
    }
    const fields = new Map<string, string>();
    const fieldBytes = bounded(VIDEO_FORM_FIELD_BYTES_MAX, fieldRefusal);
    let background: ReturnType<typeof bounded> | undefined;
    let sawVideo = false;
    let settled = false;
    let ended = false;
    let received = 0;

    const detach = () => {
      request.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
    };
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      detach();
      request.unpipe(parser);
      // Paused, not destroyed: the refusal still reaches the client (the answer closes the connection).
      request.pause();
      // Not from inside busboy's own callbacks (a 'data' or 'limit' it is still emitting): it
      // reads its state again after they return.
      setImmediate(() => parser.destroy());
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.byteLength;
    };
    const onEnd = () => {
      ended = true;
    };
    const onGone = (error?: unknown) => {
      if (!ended || error instanceof Error) fail(new ClientGone(`the client went away after ${received} bytes of the body`, { cause: error }));
    };

    parser.on("field", (name, value, info) => {
      if (settled) return;
      try {
        if (!name) throw malformed(new Error("a part's Content-Disposition has no name"));
        if (VIDEO_FIELDS.has(name) || name === BACKGROUND_FIELD) {
          throw reasonError(Code.InvalidArgument, "invalid_request", `the form field ${name} must be a file part (with a filename in its Content-Disposition)`);
        }
        if (info.valueTruncated) throw fieldRefusal();
        fieldBytes.add(Buffer.from(value, "utf8"));
        fields.set(name, value);
      } catch (error) {
        fail(error);
      }
    });
    parser.on("file", (name, stream) => {
      // A stream that is not read holds busboy back: every one is read, or destroyed with busboy.
      stream.on("error", (error) => fail(malformed(error)));
      if (settled || !name) {
        fail(malformed(new Error("a part's Content-Disposition has no name")));
        stream.resume();
        return;
      }
      let add: (chunk: Buffer) => void;
      let refusal: () => Error;
      let end = () => {};
      if (VIDEO_FIELDS.has(name)) {
        if (sawVideo) {
          fail(reasonError(Code.InvalidArgument, "invalid_request", "the form carries more than one video; send one per call"));
          stream.resume();
          return;
        }
        sawVideo = true;
        refusal = () => file.refusal();
        add = (chunk) => {
          if (file.write(chunk)) return;
          stream.pause();
          file.ready().then(() => stream.resume(), fail);
        };
      } else if (name === BACKGROUND_FIELD) {
        refusal = () => backgroundRefusal(limits);
        const image = (background = bounded(limits.backgroundBytesMax, refusal));
        add = (chunk) => image.add(chunk);
      } else {
        // Any other file part is a text field sent as a file: it counts against the fields' bytes.
        refusal = fieldRefusal;
        const start = fieldBytes.chunks.length;
        add = (chunk) => fieldBytes.add(chunk);
        end = () => fields.set(name, Buffer.concat(fieldBytes.chunks.slice(start)).toString("utf8"));
      }
      stream.on("data", (chunk: Buffer) => {
        if (settled) return;
        try {
          add(chunk);
        } catch (error) {
          fail(error);
        }
      });
      stream.on("limit", () => fail(refusal()));
      stream.on("end", () => {
        if (!settled) end();
      });
    });
    parser.on("partsLimit", () => fail(reasonError(Code.InvalidArgument, "too_many_items", `the form has more than ${VIDEO_FORM_PARTS_MAX} parts (VIDEO_FORM_PARTS_MAX)`)));
    parser.on("fieldsLimit", () => fail(reasonError(Code.InvalidArgument, "too_many_items", `the form has more than ${VIDEO_FORM_PARTS_MAX} fields (VIDEO_FORM_PARTS_MAX)`)));
    parser.on("filesLimit", () =>
      fail(reasonError(Code.InvalidArgument, "too_many_items", `the form has more than ${VIDEO_FORM_FILES_MAX} files (VIDEO_FORM_FILES_MAX): one video_file and at most one bg_image_file`)),
    );
    parser.on("error", (error) => fail(malformed(error)));
    parser.on("close", () => {
      if (settled) return;
      settled = true;
      detach();
      resolve({ fields, backgroundImage: background ? new Uint8Array(background.bytes()) : undefined, sawVideo });
    });
    request.on("data", onData).on("end", onEnd).on("error", onGone).on("close", onGone);
    request.pipe(parser);
  });
}

function fieldRefusal(): Error {
  return reasonError(Code.InvalidArgument, "too_many_bytes", `the form's fields besides the files exceed ${VIDEO_FORM_FIELD_BYTES_MAX} bytes (VIDEO_FORM_FIELD_BYTES_MAX)`);
}

function backgroundRefusal(limits: VideoUploadLimits): Error {
  return reasonError(Code.InvalidArgument, "too_many_bytes", `the background_image is more than ${limits.backgroundBytesMax} bytes (UPLOAD_BYTES_MAX)`);
}

/** Writes bytes already in memory (a VideoService.SubmitVideo message) to a temporary file, as an upload. */
export async function videoFileOf(bytes: Uint8Array): Promise<{ video: VideoInput; cleanUp(): Promise<void> }> {
  const directory = await mkdtemp(join(tmpdir(), "cutline-upload-"));
  const path = join(directory, "video");
  const cleanUp = () => rm(directory, { recursive: true, force: true });
  try {
    const stream = createWriteStream(path);
    // A permanent listener: a disk error is this call's refusal, not an unhandled 'error'.
    const failed = new Promise<never>((_, reject) => stream.on("error", (error) => reject(diskRefusal(error))));
    failed.catch(() => undefined);
    await Promise.race([failed, new Promise<void>((resolve, reject) => stream.end(bytes, (error?: Error | null) => (error ? reject(diskRefusal(error)) : resolve())))]);
    return { video: { path, bytes: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex") }, cleanUp };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

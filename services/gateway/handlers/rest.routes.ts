import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { httpStatusOf, reasonError, reasonOf } from "../../common/errors.ts";
import { BillingErrorDetailSchema } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageOptionsSchema, OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { Logger } from "../../common/logging.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import type { Admission, ImageJobs } from "../image-jobs.ts";
import { headersOf } from "./upload.admission.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";

// Room for multipart boundaries and option fields on top of the image itself.
const FORM_OVERHEAD_BYTES = 64 * 1024;

const FORMATS: Record<string, OutputFormat> = {
  png: OutputFormat.PNG,
  webp: OutputFormat.WEBP,
  jpg: OutputFormat.JPEG,
  jpeg: OutputFormat.JPEG,
  mask: OutputFormat.MASK,
};
const SIZES: Record<string, OutputSize> = {
  preview: OutputSize.PREVIEW,
  small: OutputSize.PREVIEW,
  full: OutputSize.FULL,
  auto: OutputSize.FULL,
  hd: OutputSize.HD,
};

/** 1300 millicredits -> "1.3": exact decimal credits for headers, never a float. */
export function formatCredits(millicredits: bigint): string {
  const sign = millicredits < 0n ? "-" : "";
  const absolute = millicredits < 0n ? -millicredits : millicredits;
  const fraction = (absolute % 1000n).toString().padStart(3, "0").replace(/0+$/, "");
  return `${sign}${absolute / 1000n}${fraction ? `.${fraction}` : ""}`;
}

/** The client closed or reset the connection before its body ended: there is no one to answer. */
class ClientGone extends Error {}

/**
 * The body, up to `bytesMax`. Read from the stream's events rather than `for await`, which
 * destroys the socket when it stops early, so a refusal past the limit still reaches the client.
 */
function readBody(request: HttpRequest, bytesMax: number, limitName: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const stop = () => {
      request.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
      request.pause();
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total <= bytesMax) {
        chunks.push(chunk);
        return;
      }
      stop();
      reject(reasonError(Code.InvalidArgument, "too_many_bytes", `the request body exceeds ${bytesMax} bytes (${limitName})`));
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onGone = (error?: unknown) => {
      stop();
      reject(new ClientGone(`the client went away after ${total} bytes of the body`, { cause: error }));
    };
    // A client that reset while the call was admitted is gone already: its close event has fired.
    if (request.destroyed) {
      reject(new ClientGone("the client went away before its body was read"));
      return;
    }
    request.on("data", onData).on("end", onEnd).on("error", onGone).on("close", onGone);
  });
}

/** The form's fields; a body that does not parse as multipart/form-data is the client's mistake, named. */
async function parseForm(body: Buffer, contentType: string): Promise<FormData> {
  try {
    return await new Response(body, { headers: { "content-type": contentType } }).formData();
  } catch (error) {
    throw reasonError(
      Code.InvalidArgument,
      "malformed_multipart",
      `the ${body.byteLength}-byte body does not parse as multipart/form-data with the boundary its Content-Type names: check the boundary lines and that the body was sent whole`,
      { cause: error },
    );
  }
}

function field(form: FormData, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = form.get(name);
    if (typeof value === "string" && value !== "") return value;
  }
  return undefined;
}

function choice<T>(table: Record<string, T>, raw: string | undefined, name: string): T | undefined {
  if (raw === undefined) return undefined;
  const value = table[raw.toLowerCase()];
  if (value === undefined) throw reasonError(Code.InvalidArgument, "invalid_option", `${name} must be one of ${Object.keys(table).join(", ")}`);
  return value;
}

/** remove.bg-style form fields -> ImageOptions. */
export function optionsFromForm(form: FormData): ImageOptions {
  const backgroundColor = field(form, "bg_color", "background_color");
  return create(ImageOptionsSchema, {
    format: choice(FORMATS, field(form, "format"), "format") ?? OutputFormat.PNG,
    size: choice(SIZES, field(form, "size"), "size") ?? OutputSize.FULL,
    backgroundColor: backgroundColor ? (backgroundColor.startsWith("#") ? backgroundColor : `#${backgroundColor}`) : "",
    cropToSubject: field(form, "crop") === "true",
    aspectRatio: field(form, "aspect_ratio") ?? "",
  });
}

function sendError(request: HttpRequest, response: HttpResponse, error: unknown, log: Logger): void {
  if (error instanceof ClientGone) {
    // Not a fault of ours and no one to tell: one line, and nothing was held past this point.
    log.info({ url: request.url }, error.message);
    return;
  }
  const connectError = ConnectError.from(error);
  const status = httpStatusOf(connectError);
  if (status >= 500) log.error({ err: connectError.cause ?? error }, "REST request failed");
  else log.info({ url: request.url, code: reasonOf(connectError) }, connectError.rawMessage);
  if (response.headersSent || response.destroyed) return;
  const headers: Record<string, string> = { "content-type": "application/json" };
  // Refused before the body ended: close rather than let Node read (and discard) the rest of it.
  if (!request.complete) headers.connection = "close";
  const retryAfter = connectError.metadata.get("retry-after");
  if (retryAfter) headers["retry-after"] = retryAfter;
  const jobId = connectError.metadata.get("cutline-job-id");
  if (jobId) headers["x-job-id"] = jobId;
  response.writeHead(status, headers);
  const body: Record<string, string> = { title: connectError.rawMessage, code: reasonOf(connectError) ?? Code[connectError.code], detail: connectError.rawMessage };
  // Out of credits (402): say what the balance is, what the call costs and how to top up.
  const billing = connectError.findDetails(BillingErrorDetailSchema)[0];
  if (billing?.reason === "insufficient_credits") {
    body.available_credits = formatCredits(billing.availableMillicredits);
    body.cost_credits = formatCredits(billing.costMillicredits);
    body.top_up = billing.topUpHint;
  }
  response.end(JSON.stringify({ errors: [body] }));
}

/** `POST /v1/matting`: multipart upload in, the image back, as background-removal clients expect. */
export function createRestRoutes(apiKeys: ApiKeyStore, imageJobs: ImageJobs, uploadBytesMax: number, log: Logger): HttpRoutes {
  return async (request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (path !== "/v1/matting") return false;
    if (request.method !== "POST") {
      response.writeHead(405, { allow: "POST", "content-type": "application/json" });
      response.end(JSON.stringify({ errors: [{ title: "use POST with a multipart/form-data body", code: "method_not_allowed" }] }));
      return true;
    }
    let admission: Admission | undefined;
    try {
      // Everything that can refuse the call is decided on the headers, before any body byte is read.
      const headers = headersOf(request);
      const owner = await authenticate(apiKeys, headers);
      admission = await imageJobs.admit(owner, { slot: true });
      const contentType = headers.get("content-type") ?? "";
      if (!/^multipart\/form-data\s*(;|$)/i.test(contentType)) {
        throw reasonError(Code.InvalidArgument, "invalid_request", "send the image as multipart/form-data in the field image_file");
      }
      if (!/;\s*boundary=/i.test(contentType)) {
        throw reasonError(Code.InvalidArgument, "malformed_multipart", "the Content-Type multipart/form-data has no boundary parameter");
      }
      const bodyBytesMax = uploadBytesMax + FORM_OVERHEAD_BYTES;
      const limitName = `UPLOAD_BYTES_MAX ${uploadBytesMax} plus ${FORM_OVERHEAD_BYTES} bytes of form overhead`;
      const declared = headers.get("content-length");
      if (declared !== null && Number(declared) > bodyBytesMax) {
        throw reasonError(Code.InvalidArgument, "too_many_bytes", `the request declares ${declared} bytes; the limit is ${bodyBytesMax} bytes (${limitName})`);
      }
      const body = await readBody(request, bodyBytesMax, limitName);
      const form = await parseForm(body, contentType);
      const file = form.get("image_file") ?? form.get("image");
      if (!(file instanceof Blob)) throw reasonError(Code.InvalidArgument, "missing_image", "the form has no image_file field");
      const image = new Uint8Array(await file.arrayBuffer());
      const options = optionsFromForm(form);
      const backgroundFile = form.get("bg_image_file");
      if (backgroundFile instanceof Blob) options.backgroundImage = new Uint8Array(await backgroundFile.arrayBuffer());
      const aborted = new AbortController();
      response.once("close", () => aborted.abort());
      const result = await imageJobs.removeBackground(admission, image, options, headers.get("idempotency-key") ?? "", aborted.signal);
      response.writeHead(200, {
        "content-type": result.contentType,
        "content-length": String(result.image.byteLength),
        "x-job-id": result.job.id,
        "x-credits-charged": formatCredits(result.job.chargedMillicredits),
        "x-credits-remaining": formatCredits(result.job.availableMillicredits),
      });
      response.end(result.image);
    } catch (error) {
      sendError(request, response, error, log);
    } finally {
      admission?.release();
    }
    return true;
  };
}

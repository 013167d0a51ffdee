import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { httpStatusOf, reasonError, reasonOf } from "../../common/errors.ts";
import { BillingErrorDetailSchema } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageOptionsSchema, OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { Logger } from "../../common/logging.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import type { ImageJobs } from "../image-jobs.ts";
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

async function readBody(request: HttpRequest, bytesMax: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > bytesMax) {
      throw reasonError(Code.InvalidArgument, "too_many_bytes", `the request body exceeds ${bytesMax} bytes (UPLOAD_BYTES_MAX plus form overhead)`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
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

function sendError(response: HttpResponse, error: unknown, log: Logger): void {
  const connectError = ConnectError.from(error);
  const status = httpStatusOf(connectError);
  if (status >= 500) log.error({ err: connectError.cause ?? error }, "REST request failed");
  const headers: Record<string, string> = { "content-type": "application/json" };
  const retryAfter = connectError.metadata.get("retry-after");
  if (retryAfter) headers["retry-after"] = retryAfter;
  const jobId = connectError.metadata.get("cutline-job-id");
  if (jobId) headers["x-job-id"] = jobId;
  response.writeHead(status, headers);
  const body: Record<string, string> = { title: connectError.rawMessage, code: reasonOf(connectError) ?? Code[connectError.code] };
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
    try {
      const headers = new Headers(request.headers as Record<string, string>);
      const owner = await authenticate(apiKeys, headers);
      const contentType = headers.get("content-type") ?? "";
      if (!contentType.startsWith("multipart/form-data")) {
        throw reasonError(Code.InvalidArgument, "invalid_request", "send the image as multipart/form-data in the field image_file");
      }
      const body = await readBody(request, uploadBytesMax + FORM_OVERHEAD_BYTES);
      const form = await new Response(body, { headers: { "content-type": contentType } }).formData();
      const file = form.get("image_file") ?? form.get("image");
      if (!(file instanceof Blob)) throw reasonError(Code.InvalidArgument, "missing_image", "the form has no image_file field");
      const image = new Uint8Array(await file.arrayBuffer());
      const aborted = new AbortController();
      response.once("close", () => aborted.abort());
      const result = await imageJobs.removeBackground(owner, image, optionsFromForm(form), headers.get("idempotency-key") ?? "", aborted.signal);
      response.writeHead(200, {
        "content-type": result.contentType,
        "content-length": String(result.image.byteLength),
        "x-job-id": result.job.id,
        "x-credits-charged": formatCredits(result.job.chargedMillicredits),
        "x-credits-remaining": formatCredits(result.job.availableMillicredits),
      });
      response.end(result.image);
    } catch (error) {
      sendError(response, error, log);
    }
    return true;
  };
}

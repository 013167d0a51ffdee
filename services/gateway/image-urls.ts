// image_url and bg_image_url: the gateway fetches a caller's image itself, through the outbound
// guard (no private, loopback or link-local targets; redirects re-checked; time and bytes limited).
// A fetch happens after the call is authenticated and admitted and before any hold; the bytes it
// brings then take exactly the path of an uploaded file (sniffing, byte and pixel limits).
import { Code, type ConnectError } from "@connectrpc/connect";
import { reasonError } from "../common/errors.ts";
import { clone, create } from "@bufbuild/protobuf";
import type { Plan } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ImageOptionsSchema, type ImageOptions } from "../common/gen/cutline/inference/v1/image_options_pb.ts";
import { OutboundError, parseOutboundUrl, type OutboundFailureReason, type OutboundFetcher, type OutboundPolicy } from "../common/outbound.ts";
import { imageBytesLimitOf, type ServiceImageByteLimits } from "./domain/image-bytes-limit.ts";

export type ImageUrlReason = "image_url_invalid" | "image_url_refused" | "image_url_unreachable" | "image_url_too_large";

/**
 * Each reason's one gRPC code. All are the caller's: its URL, or what its URL serves. REST answers
 * image_url_unreachable with 422 (the request is well-formed; what it points at could not be
 * fetched) and image_url_too_large with 413 (errors.ts).
 */
export const IMAGE_URL_CODE_BY_REASON: Readonly<Record<ImageUrlReason, Code>> = {
  image_url_invalid: Code.InvalidArgument,
  image_url_refused: Code.InvalidArgument,
  image_url_unreachable: Code.InvalidArgument,
  image_url_too_large: Code.InvalidArgument,
};

/**
 * How a failed fetch reads to the caller. The caller's own URL is parsed before the fetch, so an
 * invalid URL met during it is a redirect's Location: the target's fault, like a timeout.
 */
export const IMAGE_URL_REASON_BY_OUTBOUND: Readonly<Record<OutboundFailureReason, ImageUrlReason>> = {
  outbound_invalid_url: "image_url_unreachable",
  outbound_forbidden_address: "image_url_refused",
  outbound_too_many_redirects: "image_url_unreachable",
  outbound_too_large: "image_url_too_large",
  outbound_timeout: "image_url_unreachable",
  outbound_failed: "image_url_unreachable",
};

/** A refusal of `field` (image_url, bg_image_url, image_urls[3]) with its reason's one code. */
export function imageUrlError(reason: ImageUrlReason, field: string, message: string, cause?: unknown): ConnectError {
  return reasonError(IMAGE_URL_CODE_BY_REASON[reason], reason, `${field}: ${message}`, { cause });
}

export interface ImageUrlFetchOptions {
  /** The field the URL came in, named in every refusal. */
  field: string;
  /** The caller's plan: its upload limit bounds the fetch. */
  plan: Plan | undefined;
  /** The caller went away: stop fetching. */
  signal?: AbortSignal;
}

export class ImageUrls {
  constructor(
    private readonly fetcher: OutboundFetcher,
    /** The outbound policy the fetcher was made with: its byte limit is one of those that apply. */
    private readonly policy: Pick<OutboundPolicy, "bytesMax">,
    private readonly limits: Omit<ServiceImageByteLimits, "outboundBytesMax">,
  ) {}

  /**
   * The bytes at `rawUrl`, at most the smallest of the plan's upload limit, UPLOAD_BYTES_MAX,
   * IMAGE_BYTES_MAX and OUTBOUND_BYTES_MAX: the body is read as it streams and the connection
   * dropped as soon as it passes the limit. Anything but a whole 2xx answer is refused with one of
   * the image_url_* reasons, naming the field, the problem and the limit.
   */
  async fetch(rawUrl: string, options: ImageUrlFetchOptions): Promise<Uint8Array> {
    let url: URL;
    try {
      url = parseOutboundUrl(rawUrl.trim(), "the URL");
    } catch (error) {
      throw imageUrlError("image_url_invalid", options.field, error instanceof Error ? error.message : String(error));
    }
    const limit = imageBytesLimitOf(options.plan, { ...this.limits, outboundBytesMax: this.policy.bytesMax });
    let response;
    try {
      response = await this.fetcher.fetchOutbound(url, {
        headers: { accept: "image/*", "user-agent": "Cutline-ImageFetch/1" },
        bytesMax: limit.bytesMax,
        bytesLimitName: limit.name,
        signal: options.signal,
      });
    } catch (error) {
      if (!(error instanceof OutboundError)) throw error;
      throw imageUrlError(IMAGE_URL_REASON_BY_OUTBOUND[error.reason], options.field, error.message, error.cause);
    }
    if (response.status < 200 || response.status > 299) {
      const answered = new URL(response.url);
      throw imageUrlError("image_url_unreachable", options.field, `${answered.host} answered HTTP ${response.status}; the URL must answer 2xx with the image`);
    }
    return response.body;
  }

  /**
   * A typed request's image and options with any image_url and background_image_url fetched into
   * them; bytes and a URL for the same image are refused naming both. No URL: the request as it came.
   */
  async resolveTyped(
    request: { image: Uint8Array; imageUrl: string; options?: ImageOptions; backgroundImageUrl: string },
    context: { plan: Plan | undefined; signal?: AbortSignal },
  ): Promise<{ image: Uint8Array; options: ImageOptions | undefined }> {
    const background = request.options?.backgroundImage ?? new Uint8Array();
    if (request.image.byteLength > 0 && request.imageUrl !== "") throw conflicting("image", "image_url");
    if (background.byteLength > 0 && request.backgroundImageUrl !== "") throw conflicting("options.background_image", "background_image_url");
    const image = request.imageUrl === "" ? request.image : await this.fetch(request.imageUrl, { field: "image_url", ...context });
    if (request.backgroundImageUrl === "") return { image, options: request.options };
    const options = request.options ? clone(ImageOptionsSchema, request.options) : create(ImageOptionsSchema);
    options.backgroundImage = await this.fetch(request.backgroundImageUrl, { field: "background_image_url", ...context });
    return { image, options };
  }
}

function conflicting(bytesField: string, urlField: string): ConnectError {
  return reasonError(Code.InvalidArgument, "conflicting_image_inputs", `send either ${bytesField} or ${urlField}, not both`);
}

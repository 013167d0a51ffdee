import { Code } from "@connectrpc/connect";
import { reasonError } from "../errors.ts";
import { readImageHeader } from "./image-header.reader.ts";
import type { ImageLimits } from "./image-limits.ts";
import { ImageError } from "./image.errors.ts";

/** What the gateway learns from an upload's header before any hold is taken. */
export interface UploadInfo {
  format: string;
  width: number;
  height: number;
  pixels: number;
}

/** Sniffs the format and checks limits from the header; throws a user error naming the limit. */
export type UploadInspector = (image: Uint8Array) => Promise<UploadInfo>;

/**
 * The gateway's check of an upload, before any hold is taken: sniff the format and check bytes
 * and pixels from the header with the same limits inference applies, so a BMP or PNG whose header
 * claims more pixels than its bytes hold is never priced by its header.
 * Refusals are InvalidArgument ConnectErrors with the reason in `cutline-reason`.
 */
export function createUploadInspector(limits: ImageLimits): UploadInspector {
  return async (image) => {
    try {
      const { format, width, height, pixels } = await readImageHeader(image, limits);
      return { format, width, height, pixels };
    } catch (error) {
      if (!(error instanceof ImageError)) throw error;
      throw reasonError(Code.InvalidArgument, error.reason, error.message, { cause: error.cause ?? error });
    }
  };
}

import { reasonError } from "../../common/errors.ts";
import { connectCodeOf, inferenceErrorOf } from "../domain/inference.errors.ts";
import { imageLimitsOf, readImageHeader } from "./image.decoder.ts";

/**
 * The engine's `inspect` without the model, for the gateway: sniff the format and check bytes
 * and pixels from the header with the same limits inference applies, before any hold is taken:
 * a BMP or PNG whose header claims more pixels than its bytes can hold is refused here, so it is
 * never priced by its header.
 * Failures are ConnectErrors with the reason in `cutline-reason` (InvalidArgument for bad input).
 */
export function createUploadInspector(config: Parameters<typeof imageLimitsOf>[0]) {
  const limits = imageLimitsOf(config);
  return async (image: Uint8Array): Promise<{ format: string; width: number; height: number; pixels: number }> => {
    try {
      const header = await readImageHeader(image, limits);
      return { format: header.format, width: header.width, height: header.height, pixels: header.pixels };
    } catch (error) {
      const failure = inferenceErrorOf(error);
      throw reasonError(connectCodeOf(failure), failure.reason, failure.message, { cause: failure.cause ?? failure });
    }
  };
}

// One image decode thread: BMP (bmp-ts, plain JavaScript) and HEIF (libheif, WebAssembly) decode
// synchronously, for seconds on large pictures; here they cannot stall the service's event loop.
import { parentPort, workerData } from "node:worker_threads";
import sharp from "sharp";
import { runDecodeTask, type DecodeTask } from "./image.decoder.ts";

// Loading sharp here reset libvips' process-wide thread count to its glibc default; the engine's stands.
const { imageThreads } = workerData as { imageThreads: number | undefined };
if (imageThreads !== undefined) sharp.concurrency(imageThreads);

const port = parentPort!;
port.on("message", async (task: DecodeTask) => {
  const { reply, transfer } = await runDecodeTask(task);
  port.postMessage({ kind: "reply", reply }, transfer);
});
port.postMessage({ kind: "ready" });

// One image decode thread: BMP (bmp-ts, plain JavaScript) and HEIF (libheif, WebAssembly) decode
// synchronously, for seconds on large pictures; here they cannot stall the service's event loop.
import { parentPort } from "node:worker_threads";
import { runDecodeTask, type DecodeTask } from "./image.decoder.ts";

const port = parentPort!;
port.on("message", async (task: DecodeTask) => {
  const { reply, transfer } = await runDecodeTask(task);
  port.postMessage({ kind: "reply", reply }, transfer);
});
port.postMessage({ kind: "ready" });

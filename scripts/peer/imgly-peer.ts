// The open-source peer, `@imgly/background-removal-node` (a dev dependency, on the project's sharp
// and onnxruntime through npm overrides), run in its own process so its onnxruntime session,
// threads and memory never share ours. Reads image paths on the command line, warms up on the
// first, then cuts out each once:
//
//   tsx scripts/peer/imgly-peer.ts [--alpha-dir <dir>] <image>...
//
// One JSON line per image on stdout: {"image", "ms"} (wall time of `removeBackground` on the
// file's bytes, the peer decoding and encoding as it does); with --alpha-dir the cut-out's alpha
// is also written there as <index>.png for scoring with the same metric code as ours.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { removeBackground } from "@imgly/background-removal-node";
import sharp from "sharp";

const args = process.argv.slice(2);
const alphaFlag = args.indexOf("--alpha-dir");
const alphaDirectory = alphaFlag >= 0 ? args[alphaFlag + 1] : undefined;
const images = args.filter((_, index) => alphaFlag < 0 || (index !== alphaFlag && index !== alphaFlag + 1));
if (images.length === 0) {
  console.error("usage: tsx scripts/peer/imgly-peer.ts [--alpha-dir <dir>] <image>...");
  process.exit(2);
}

const mimeOf = (path: string) => (/\.png$/i.test(path) ? "image/png" : "image/jpeg");
const cut = async (path: string) =>
  removeBackground(new Blob([readFileSync(path)], { type: mimeOf(path) }), { model: "medium", output: { format: "image/png" } });

await cut(images[0]!);
for (const [index, image] of images.entries()) {
  const started = performance.now();
  const result = await cut(image);
  const ms = performance.now() - started;
  if (alphaDirectory !== undefined) {
    await sharp(Buffer.from(await result.arrayBuffer())).ensureAlpha().extractChannel(3).png().toFile(join(alphaDirectory, `${index}.png`));
  }
  console.log(JSON.stringify({ image, ms: Number(ms.toFixed(1)) }));
}

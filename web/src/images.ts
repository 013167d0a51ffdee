// The cut-out is computed once by the server (a transparent PNG, charged once); the background
// and the download format are applied here in the browser, so trying another colour or format
// costs nothing. JPEG has no alpha: without a background it goes on white, as the API does.
import { zipSync } from "fflate";

export type DownloadFormat = "png" | "webp" | "jpeg" | "mask";

export const DOWNLOAD_FORMATS: readonly { format: DownloadFormat; label: string }[] = [
  { format: "png", label: "PNG" },
  { format: "webp", label: "WebP" },
  { format: "jpeg", label: "JPEG" },
  { format: "mask", label: "Mask" },
];

export type Background = { kind: "none" } | { kind: "color"; color: string } | { kind: "image"; url: string; name: string };

const TYPE_OF: Record<DownloadFormat, string> = { png: "image/png", webp: "image/webp", jpeg: "image/jpeg", mask: "image/png" };
const EXTENSION_OF: Record<DownloadFormat, string> = { png: "png", webp: "webp", jpeg: "jpg", mask: "png" };
/** Quality of the lossy encodings, 0 to 1. */
const LOSSY_QUALITY = 0.92;

function loadImage(url: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not decode ${url}`));
    image.src = url;
  });
}

/** Draws `source` to cover the canvas (cropped, aspect ratio kept), as CSS background-size: cover. */
function drawCover(context: CanvasRenderingContext2D, source: HTMLImageElement, width: number, height: number): void {
  const scale = Math.max(width / source.naturalWidth, height / source.naturalHeight);
  const drawnWidth = source.naturalWidth * scale;
  const drawnHeight = source.naturalHeight * scale;
  context.drawImage(source, (width - drawnWidth) / 2, (height - drawnHeight) / 2, drawnWidth, drawnHeight);
}

/** The cut-out at `resultUrl`, on `background`, encoded as `format` (the mask: alpha as grey, no background). */
export async function render(resultUrl: string, background: Background, format: DownloadFormat): Promise<Blob> {
  const cutout = await loadImage(resultUrl);
  const canvas = document.createElement("canvas");
  canvas.width = cutout.naturalWidth;
  canvas.height = cutout.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: format === "mask" });
  if (!context) throw new Error("this browser cannot draw on a canvas");
  if (format === "mask") {
    context.drawImage(cutout, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    const data = pixels.data;
    for (let index = 0; index < data.length; index += 4) {
      const alpha = data[index + 3]!;
      data[index] = alpha;
      data[index + 1] = alpha;
      data[index + 2] = alpha;
      data[index + 3] = 255;
    }
    context.putImageData(pixels, 0, 0);
  } else {
    if (background.kind === "color") {
      context.fillStyle = background.color;
      context.fillRect(0, 0, canvas.width, canvas.height);
    } else if (background.kind === "image") {
      drawCover(context, await loadImage(background.url), canvas.width, canvas.height);
    } else if (format === "jpeg") {
      context.fillStyle = "#ffffff";
      context.fillRect(0, 0, canvas.width, canvas.height);
    }
    context.drawImage(cutout, 0, 0);
  }
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error(`this browser cannot encode ${format}`))), TYPE_OF[format], LOSSY_QUALITY),
  );
}

/** `photo.heic` → `photo.png` (`photo-mask.png` for the mask). */
export function downloadName(inputName: string, format: DownloadFormat): string {
  const stem = inputName.replace(/\.[^.]+$/, "") || "image";
  return `${stem}${format === "mask" ? "-mask" : ""}.${EXTENSION_OF[format]}`;
}

/** Saves `blob` as `name` through a temporary link. */
export function save(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** One zip of every result in `format`; names made unique when two inputs share a stem. */
export async function zipAll(results: readonly { name: string; url: string }[], background: Background, format: DownloadFormat): Promise<Blob> {
  const files: Record<string, Uint8Array> = {};
  for (const result of results) {
    let name = downloadName(result.name, format);
    for (let copy = 2; name in files; copy += 1) name = downloadName(`${result.name.replace(/\.[^.]+$/, "")}-${copy}`, format);
    files[name] = new Uint8Array(await (await render(result.url, background, format)).arrayBuffer());
  }
  // PNG, WebP and JPEG are compressed already: stored, not deflated again.
  const zipped = zipSync(files, { level: 0 });
  return new Blob([zipped as Uint8Array<ArrayBuffer>], { type: "application/zip" });
}

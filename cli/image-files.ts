// Which files `cutline remove` sends, and where each result goes. A file named on the command line
// is always sent (the server sniffs it and refuses what is not an image, and that refusal is listed);
// a folder is walked, recursively, and only its files whose first bytes are an image the gateway
// reads (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/AVIF) are taken: sniffed, whatever their extension,
// so `photo.JPG`, `scan` and `export.jpeg` all count and a `notes.txt` never costs a call.
import { open, readdir, stat } from "node:fs/promises";
import { basename, extname, join, relative, resolve, sep } from "node:path";

/** Bytes read from each file in a folder to sniff its format. */
const SNIFF_BYTES = 32;

/** The image format named by a file's first bytes, or undefined when it is none the gateway reads. */
export function sniffImage(head: Uint8Array): string | undefined {
  const ascii = (start: number, end: number) => String.fromCharCode(...head.subarray(start, end));
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "jpeg";
  if (ascii(0, 8) === "\x89PNG\r\n\x1a\n") return "png";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  if (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a") return "gif";
  if (ascii(0, 2) === "BM") return "bmp";
  if (ascii(0, 4) === "II*\0" || ascii(0, 4) === "MM\0*") return "tiff";
  if (ascii(4, 8) === "ftyp" && /^(heic|heix|hevc|hevx|heim|heis|mif1|msf1|avif)$/.test(ascii(8, 12))) return "heic";
  return undefined;
}

export interface InputFile {
  /** As the user named it, or the folder's path joined with the file's. */
  path: string;
}

export interface Collected {
  files: InputFile[];
  /** Named on the command line but not there: each one is a failed file. */
  missing: { path: string; message: string }[];
  /** Files in folders that were not images, left alone. */
  ignored: number;
}

/** Files named and the images found in folders named, in order, each once; `outDirectory` is never walked. */
export async function collectInputs(paths: string[], outDirectory: string): Promise<Collected> {
  const collected: Collected = { files: [], missing: [], ignored: 0 };
  const seen = new Set<string>();
  const add = (path: string) => {
    const absolute = resolve(path);
    if (seen.has(absolute)) return;
    seen.add(absolute);
    collected.files.push({ path });
  };
  for (const path of paths) {
    const info = await stat(path).catch((error: NodeJS.ErrnoException) => error);
    if (info instanceof Error) {
      collected.missing.push({ path, message: info.code === "ENOENT" ? "no such file or folder" : info.message });
    } else if (info.isDirectory()) {
      for await (const file of walk(path, resolve(outDirectory))) {
        if (await isImage(file)) add(file);
        else collected.ignored += 1;
      }
    } else add(path);
  }
  return collected;
}

/** Files under `directory`, sorted, skipping dot-entries and the output folder. */
async function* walk(directory: string, outDirectory: string): AsyncGenerator<string> {
  const entries = await readdir(directory, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const path = join(directory, entry.name);
    if (entry.isDirectory()) {
      if (resolve(path) !== outDirectory) yield* walk(path, outDirectory);
    } else if (entry.isFile()) yield path;
  }
}

async function isImage(path: string): Promise<boolean> {
  const handle = await open(path, "r");
  try {
    const head = new Uint8Array(SNIFF_BYTES);
    const { bytesRead } = await handle.read(head, 0, SNIFF_BYTES, 0);
    return sniffImage(head.subarray(0, bytesRead)) !== undefined;
  } finally {
    await handle.close();
  }
}

export type CliFormat = "png" | "webp" | "jpg" | "mask";

/** `<name without extension>.<format>`; the mask is a grayscale PNG, so `<name>.mask.png`. */
export function outputNameOf(path: string, format: CliFormat): string {
  const name = basename(path, extname(path));
  return format === "mask" ? `${name}.mask.png` : `${name}.${format}`;
}

/** Pairs of inputs that would write the same output file, as "a and b both write x". */
export function outputCollisions(files: InputFile[], format: CliFormat): string[] {
  const byOutput = new Map<string, string>();
  const collisions: string[] = [];
  for (const file of files) {
    const output = outputNameOf(file.path, format);
    const earlier = byOutput.get(output);
    if (earlier !== undefined) collisions.push(`${earlier} and ${file.path} both write ${output}`);
    else byOutput.set(output, file.path);
  }
  return collisions;
}

/** A path for messages: relative to the working directory when inside it. */
export function shown(path: string): string {
  const inside = relative(process.cwd(), resolve(path));
  return inside.startsWith("..") || inside.startsWith(sep) ? path : inside;
}

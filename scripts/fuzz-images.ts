// Image fuzzer: `npm run fuzz:images -- --count 2000 [--seed 1] [--concurrency 4] [--mix refusals]`.
// Starts its own single node as a child process (scripts/fuzz-node.ts: temp data directory,
// embedded defaults, a funded account on the unlimited plan), mutates real images (bit flips,
// truncations, and edits of the fields decoders trust: dimensions, chunk lengths, markers, EXIF
// orientation, ICC profiles, HEIF boxes, BMP headers) and sends them to POST /v1/matting. It
// samples the child's RSS and event-loop stalls, restarts it if it dies, and prints as its LAST
// line one JSON object: sent, ok, clientErrors (each with the stable code from the body),
// serverErrors, crashes, maxRssMb, maxEventLoopDelayMs, maxEventLoopBlockMs, codes. Sample i is
// built from its own generator seeded by (seed, i): `--seed S --from i --count 1` sends it again.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { crc32 } from "node:zlib";
import sharp from "sharp";
import { bmpFromRgba, rleBmpClaiming } from "../services/inference/testdata/hostile-images.ts";

const root = join(import.meta.dirname, "..");

const { values: args } = parseArgs({
  options: {
    count: { type: "string", default: "200" },
    seed: { type: "string", default: "1" },
    from: { type: "string", default: "0" },
    concurrency: { type: "string", default: "4" },
    // Share of samples sent unmutated: each goes through the model, which is slow on CPU.
    "valid-share": { type: "string", default: "0.04" },
    "dev-images": { type: "string", default: join(root, "..", "shared", "eval", "dev") },
    "request-timeout-ms": { type: "string", default: "180000" },
    // "all" (default) or "refusals": only edits of the fields decoders trust and early cuts,
    // so most files are refused before the model runs (CI's short run on CPU).
    mix: { type: "string", default: "all" },
    // With --concurrency 1, each request's event-loop stall is known: print those above this.
    "stall-report-ms": { type: "string", default: "50" },
  },
});
const count = Number(args.count);
const seed = Number(args.seed);
const from = Number(args.from);
const concurrency = Number(args.concurrency);
const validShare = Number(args["valid-share"]);
const requestTimeoutMs = Number(args["request-timeout-ms"]);
const stallReportMs = Number(args["stall-report-ms"]);
const refusalsOnly = args.mix === "refusals";
if (args.mix !== "all" && !refusalsOnly) throw new Error(`--mix must be all or refusals, got ${args.mix}`);
// The edits most likely to be refused before inference, for --mix refusals.
const refusalEdits = new Set(["ihdrSize", "chunkLength", "sofSize", "ispe", "boxSize", "hugeClaim"]);
for (const [name, value] of Object.entries({ count, seed, from, concurrency, validShare, requestTimeoutMs })) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number, got ${value}`);
}

// ---------- seeded randomness ----------

type Random = () => number;
function mulberry32(state: number): Random {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const integerBelow = (random: Random, bound: number) => Math.floor(random() * bound);
const pick = <T>(random: Random, items: readonly T[]): T => items[integerBelow(random, items.length)]!;
const interesting32 = [0, 1, 2, 255, 256, 4096, 10_000, 16_383, 16_384, 32_767, 65_535, 65_536, 100_000, 0x7fffffff, 0x80000000, 0xffffffff];
const interesting16 = [0, 1, 2, 255, 256, 4096, 10_000, 16_383, 32_767, 32_768, 65_535];

// ---------- seed images ----------

interface SeedImage {
  name: string;
  format: "jpeg" | "png" | "webp" | "gif" | "tiff" | "bmp" | "heif";
  bytes: Uint8Array;
  /** Small enough that an unmutated send costs one model run and little else. */
  small: boolean;
}

function scene(width: number, height: number) {
  const stripes = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 3;
      const inside = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (Math.min(width, height) / 3) ** 2;
      stripes[offset] = inside ? 220 : (x * 255) / width;
      stripes[offset + 1] = inside ? 40 : (y * 255) / height;
      stripes[offset + 2] = inside ? 60 : 128;
    }
  }
  return sharp(stripes, { raw: { width, height, channels: 3 } });
}

async function bmpOf(width: number, height: number, bitPP: 24 | 32): Promise<Uint8Array> {
  const { data } = await scene(width, height).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return bmpFromRgba(data, width, height, bitPP);
}

async function seedImages(devDirectory: string): Promise<SeedImage[]> {
  const base = () => scene(96, 64);
  const made: [string, SeedImage["format"], Promise<Uint8Array>][] = [
    ["jpeg", "jpeg", base().jpeg({ quality: 90 }).toBuffer()],
    ["jpeg-progressive", "jpeg", base().jpeg({ quality: 80, progressive: true }).toBuffer()],
    ["jpeg-exif6-p3", "jpeg", base().withIccProfile("p3").withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer()],
    ["jpeg-cmyk", "jpeg", base().toColourspace("cmyk").jpeg().toBuffer()],
    ["png-rgb", "png", base().png().toBuffer()],
    ["png-rgba-icc", "png", base().ensureAlpha(0.6).withIccProfile("p3").png().toBuffer()],
    ["png-palette", "png", base().png({ palette: true }).toBuffer()],
    ["png-16bit", "png", base().toColourspace("rgb16").png().toBuffer()],
    ["png-interlaced", "png", base().png({ progressive: true }).toBuffer()],
    ["webp-lossy", "webp", base().webp().toBuffer()],
    ["webp-lossless", "webp", base().webp({ lossless: true }).toBuffer()],
    ["gif", "gif", base().gif().toBuffer()],
    ["tiff", "tiff", base().tiff().toBuffer()],
    ["bmp-24", "bmp", bmpOf(96, 64, 24)],
    ["bmp-32", "bmp", bmpOf(96, 64, 32)],
    ["heic", "heif", Promise.resolve(readFileSync(join(root, "services", "inference", "testdata", "orange-blue-corner.heic")))],
  ];
  const images: SeedImage[] = [];
  for (const [name, format, bytes] of made) images.push({ name, format, bytes: new Uint8Array(await bytes), small: true });
  // Real photographs, read where they are (never copied into the repository): a few of each kind.
  if (existsSync(devDirectory)) {
    const files: string[] = [];
    const walk = (directory: string) => {
      for (const entry of readdirSync(directory, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const path = join(directory, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (/\.(jpe?g|png)$/i.test(entry.name) && !/mask|alpha|trimap|gt/i.test(entry.name) && statSync(path).size < 2_000_000) files.push(path);
      }
    };
    walk(devDirectory);
    for (const path of files.slice(0, 12)) {
      const bytes = new Uint8Array(readFileSync(path));
      images.push({ name: `dev:${path.slice(devDirectory.length + 1)}`, format: /\.png$/i.test(path) ? "png" : "jpeg", bytes, small: false });
    }
  }
  return images;
}

// ---------- format-aware edits ----------

interface Segment {
  offset: number;
  length: number;
  type: string;
}

function pngChunks(bytes: Uint8Array): Segment[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: Segment[] = [];
  for (let offset = 8; offset + 12 <= bytes.length && chunks.length < 10_000; ) {
    const length = view.getUint32(offset);
    chunks.push({ offset, length, type: String.fromCharCode(...bytes.subarray(offset + 4, offset + 8)) });
    offset += 12 + length;
  }
  return chunks;
}

function fixPngCrc(bytes: Uint8Array, chunk: Segment): void {
  const end = chunk.offset + 8 + chunk.length;
  if (end + 4 > bytes.length) return;
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(end, crc32(bytes.subarray(chunk.offset + 4, end)) >>> 0);
}

function jpegSegments(bytes: Uint8Array): Segment[] {
  const segments: Segment[] = [];
  for (let offset = 2; offset + 4 <= bytes.length && bytes[offset] === 0xff; ) {
    const marker = bytes[offset + 1]!;
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      offset += 2;
      continue;
    }
    const length = (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
    segments.push({ offset, length, type: marker.toString(16) });
    if (marker === 0xda) break;
    offset += 2 + length;
  }
  return segments;
}

function findAll(bytes: Uint8Array, text: string): number[] {
  const needle = Buffer.from(text, "latin1");
  const found: number[] = [];
  for (let index = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(needle); index >= 0; ) {
    found.push(index);
    index = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(needle, index + 1);
  }
  return found;
}

type Mutation = (bytes: Uint8Array, random: Random, image: SeedImage) => string | undefined;

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

const generic: Record<string, Mutation> = {
  bitFlips(bytes, random) {
    const flips = 1 + integerBelow(random, 16);
    const nearHead = random() < 0.6;
    for (let index = 0; index < flips; index++) {
      const position = integerBelow(random, nearHead ? Math.min(bytes.length, 512) : bytes.length);
      bytes[position]! ^= 1 << integerBelow(random, 8);
    }
    return `${flips} bit flips${nearHead ? " in the first 512 bytes" : ""}`;
  },
  byteSets(bytes, random) {
    const sets = 1 + integerBelow(random, 8);
    for (let index = 0; index < sets; index++) bytes[integerBelow(random, bytes.length)] = pick(random, [0x00, 0xff, 0x7f, 0x80, integerBelow(random, 256)]);
    return `${sets} bytes set`;
  },
  randomBlock(bytes, random) {
    const start = integerBelow(random, bytes.length);
    const length = Math.min(bytes.length - start, 1 + integerBelow(random, 64));
    for (let index = start; index < start + length; index++) bytes[index] = integerBelow(random, 256);
    return `${length} random bytes at ${start}`;
  },
};

const targeted: Partial<Record<SeedImage["format"], Record<string, Mutation>>> = {
  png: {
    ihdrSize(bytes, random) {
      const chunk = pngChunks(bytes).find((candidate) => candidate.type === "IHDR");
      if (!chunk) return undefined;
      const width = pick(random, interesting32);
      const height = pick(random, interesting32);
      view(bytes).setUint32(chunk.offset + 8, width);
      view(bytes).setUint32(chunk.offset + 12, height);
      const fixed = random() < 0.7;
      if (fixed) fixPngCrc(bytes, chunk);
      return `IHDR ${width}×${height}, CRC ${fixed ? "fixed" : "stale"}`;
    },
    ihdrFields(bytes, random) {
      const chunk = pngChunks(bytes).find((candidate) => candidate.type === "IHDR");
      if (!chunk) return undefined;
      const field = 8 + integerBelow(random, 5);
      const value = pick(random, [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255]);
      bytes[chunk.offset + 8 + field] = value;
      fixPngCrc(bytes, chunk);
      return `IHDR byte ${field} = ${value}`;
    },
    chunkLength(bytes, random) {
      const chunks = pngChunks(bytes);
      if (chunks.length === 0) return undefined;
      const chunk = pick(random, chunks);
      const length = pick(random, interesting32);
      view(bytes).setUint32(chunk.offset, length);
      return `${chunk.type} length ${length}`;
    },
    idatData(bytes, random) {
      const chunk = pngChunks(bytes).find((candidate) => candidate.type === "IDAT");
      if (!chunk || chunk.length === 0) return undefined;
      for (let index = 0; index < 4; index++) bytes[chunk.offset + 8 + integerBelow(random, chunk.length)] = integerBelow(random, 256);
      fixPngCrc(bytes, chunk);
      return "IDAT data corrupted, CRC fixed";
    },
    iccp(bytes, random) {
      const chunk = pngChunks(bytes).find((candidate) => candidate.type === "iCCP");
      if (!chunk) return undefined;
      for (let index = 0; index < 8; index++) bytes[chunk.offset + 8 + integerBelow(random, chunk.length)] = integerBelow(random, 256);
      fixPngCrc(bytes, chunk);
      return "iCCP profile corrupted, CRC fixed";
    },
  },
  jpeg: {
    sofSize(bytes, random) {
      const sof = jpegSegments(bytes).find((segment) => ["c0", "c1", "c2"].includes(segment.type));
      if (!sof) return undefined;
      const height = pick(random, interesting16);
      const width = pick(random, interesting16);
      view(bytes).setUint16(sof.offset + 5, height);
      view(bytes).setUint16(sof.offset + 7, width);
      return `SOF ${width}×${height}`;
    },
    sofComponents(bytes, random) {
      const sof = jpegSegments(bytes).find((segment) => ["c0", "c1", "c2"].includes(segment.type));
      if (!sof) return undefined;
      const field = pick(random, [4, 9, 10, 11, 12]);
      const value = pick(random, [0, 1, 2, 3, 4, 5, 0x11, 0x44, 0xff]);
      bytes[sof.offset + field] = value;
      return `SOF byte ${field} = ${value}`;
    },
    segmentLength(bytes, random) {
      const segments = jpegSegments(bytes);
      if (segments.length === 0) return undefined;
      const segment = pick(random, segments);
      const length = pick(random, interesting16);
      view(bytes).setUint16(segment.offset + 2, length);
      return `marker ${segment.type} length ${length}`;
    },
    marker(bytes, random) {
      const segments = jpegSegments(bytes);
      if (segments.length === 0) return undefined;
      const segment = pick(random, segments);
      const marker = pick(random, [0xc0, 0xc2, 0xc4, 0xd8, 0xd9, 0xda, 0xdb, 0xdd, 0xe1, 0xfe, 0x00]);
      bytes[segment.offset + 1] = marker;
      return `marker ${segment.type} -> ${marker.toString(16)}`;
    },
    exifOrientation(bytes, random) {
      const at = findAll(bytes, "Exif\0\0")[0];
      if (at === undefined) return undefined;
      const tiff = at + 6;
      const little = bytes[tiff] === 0x49;
      const data = view(bytes);
      const ifd = tiff + data.getUint32(tiff + 4, little);
      if (ifd + 2 > bytes.length) return undefined;
      const entries = data.getUint16(ifd, little);
      for (let index = 0; index < entries && ifd + 2 + index * 12 + 12 <= bytes.length; index++) {
        const entry = ifd + 2 + index * 12;
        if (data.getUint16(entry, little) !== 0x0112) continue;
        const value = pick(random, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255, 65_535]);
        data.setUint16(entry + 8, value, little);
        if (random() < 0.3) data.setUint16(entry + 2, pick(random, [1, 3, 4, 7, 0]), little);
        return `EXIF orientation ${value}`;
      }
      return undefined;
    },
    iccProfile(bytes, random) {
      const at = findAll(bytes, "ICC_PROFILE")[0];
      if (at === undefined) return undefined;
      const field = pick(random, [14, 15, 16, 17, 18, 19, 50, 140]);
      for (let index = 0; index < 4; index++) bytes[at + field + index] = integerBelow(random, 256);
      return `ICC profile bytes at +${field} randomised`;
    },
  },
  heif: {
    ispe(bytes, random) {
      const at = findAll(bytes, "ispe")[0];
      if (at === undefined) return undefined;
      const width = pick(random, [...interesting32, 7000, 7071]);
      const height = pick(random, [...interesting32, 7000, 7071]);
      view(bytes).setUint32(at + 8, width);
      view(bytes).setUint32(at + 12, height);
      // libheif reports the clean aperture (clap) as the size where there is one.
      const clap = findAll(bytes, "clap")[0];
      const withClap = clap !== undefined && random() < 0.7;
      if (withClap) for (const [index, value] of [width, 1, height, 1, 0, 1, 0, 1].entries()) view(bytes).setUint32(clap + 4 + index * 4, value);
      return `ispe ${width}×${height}${withClap ? " and clap" : ""}`;
    },
    boxSize(bytes, random) {
      const boxes = ["ftyp", "meta", "hdlr", "pitm", "iloc", "iinf", "infe", "iprp", "ipco", "ipma", "hvcC", "ispe", "mdat", "irot"].flatMap((type) =>
        findAll(bytes, type).map((offset) => ({ type, offset })),
      );
      if (boxes.length === 0) return undefined;
      const box = pick(random, boxes);
      if (box.offset < 4) return undefined;
      const size = pick(random, interesting32);
      view(bytes).setUint32(box.offset - 4, size);
      return `${box.type} box size ${size}`;
    },
    boxBody(bytes, random) {
      const boxes = ["iloc", "ipma", "hvcC", "pitm", "iinf"].flatMap((type) => findAll(bytes, type));
      if (boxes.length === 0) return undefined;
      const at = pick(random, boxes);
      for (let index = 0; index < 4; index++) bytes[Math.min(bytes.length - 1, at + 4 + integerBelow(random, 24))] = pick(random, [0, 1, 0xff, integerBelow(random, 256)]);
      return `box ${String.fromCharCode(...bytes.subarray(at, at + 4))} body edited`;
    },
  },
  bmp: {
    header(bytes, random) {
      const fields: [string, number, 2 | 4][] = [
        ["bfSize", 2, 4],
        ["bfOffBits", 10, 4],
        ["biSize", 14, 4],
        ["biWidth", 18, 4],
        ["biHeight", 22, 4],
        ["biPlanes", 26, 2],
        ["biBitCount", 28, 2],
        ["biCompression", 30, 4],
        ["biClrUsed", 46, 4],
      ];
      const [name, offset, size] = pick(random, fields);
      const value = name === "biBitCount" ? pick(random, [0, 1, 2, 4, 8, 16, 24, 32, 64]) : name === "biCompression" ? pick(random, [0, 1, 2, 3, 4, 5, 6, 11]) : pick(random, interesting32);
      if (size === 2) view(bytes).setUint16(offset, value & 0xffff, true);
      else view(bytes).setUint32(offset, value >>> 0, true);
      return `BMP ${name} = ${value}`;
    },
    hugeClaim(bytes, random) {
      const width = pick(random, [10_000, 20_000, 7000, 65_535]);
      const height = pick(random, [10_000, -10_000, 7000, 65_535]);
      view(bytes).setInt32(18, width, true);
      view(bytes).setInt32(22, height, true);
      return `BMP claims ${width}×${height}`;
    },
  },
  webp: {
    size(bytes, random) {
      const data = view(bytes);
      const value = pick(random, interesting16);
      const at = pick(random, [26, 28, 21, 22, 24]);
      if (at + 2 > bytes.length) return undefined;
      data.setUint16(at, value, true);
      return `WebP bytes ${at}..${at + 1} = ${value}`;
    },
  },
  gif: {
    size(bytes, random) {
      const at = pick(random, [6, 8]);
      const value = pick(random, interesting16);
      view(bytes).setUint16(at, value, true);
      return `GIF screen ${at === 6 ? "width" : "height"} ${value}`;
    },
  },
  tiff: {
    tag(bytes, random) {
      const data = view(bytes);
      const little = bytes[0] === 0x49;
      const ifd = data.getUint32(4, little);
      if (ifd + 2 > bytes.length) return undefined;
      const entries = data.getUint16(ifd, little);
      if (entries === 0) return undefined;
      const entry = ifd + 2 + integerBelow(random, entries) * 12;
      if (entry + 12 > bytes.length) return undefined;
      const value = pick(random, interesting32);
      data.setUint32(entry + 8, value >>> 0, little);
      return `TIFF tag ${data.getUint16(entry, little)} value ${value}`;
    },
  },
};

interface Sample {
  index: number;
  bytes: Uint8Array;
  description: string;
  valid: boolean;
}

function applies(edit: () => string | undefined): string | undefined {
  try {
    return edit();
  } catch (error) {
    if (error instanceof RangeError) return undefined;
    throw error;
  }
}

function buildSample(index: number, seeds: SeedImage[]): Sample {
  const random = mulberry32((seed * 1_000_003 + index) | 0);
  if (random() < validShare) {
    const image = pick(random, seeds.filter((candidate) => candidate.small));
    return { index, bytes: image.bytes, description: `#${index} ${image.name} unmutated`, valid: true };
  }
  // A fixed share of the worst cases the black-box run and review named.
  if (random() < (refusalsOnly ? 0.1 : 0.05)) {
    const width = pick(random, [10_000, 20_000, 7000]);
    return { index, bytes: rleBmpClaiming(width, width), description: `#${index} RLE8 BMP of ${1082} bytes claiming ${width}×${width}`, valid: false };
  }
  const image = pick(random, seeds);
  const bytes = new Uint8Array(image.bytes);
  const steps: string[] = [];
  const rounds = random() < 0.8 ? 1 : 2 + integerBelow(random, 2);
  let result = bytes;
  for (let round = 0; round < rounds; round++) {
    const roll = random();
    const formatEdits = targeted[image.format];
    const names = Object.keys(formatEdits ?? {}).filter((name) => !refusalsOnly || refusalEdits.has(name));
    if ((roll < 0.6 || (refusalsOnly && roll < 0.8)) && formatEdits && names.length > 0) {
      const name = pick(random, names);
      // An edit whose field lies past an earlier cut does not apply.
      const step = applies(() => formatEdits[name]!(result, random, image));
      if (step) steps.push(step);
    } else if (roll < 0.85 && !refusalsOnly) {
      const name = pick(random, Object.keys(generic));
      const step = result.length > 0 ? applies(() => generic[name]!(result, random, image)) : undefined;
      if (step) steps.push(step);
    } else {
      const cut = random() < 0.5 || refusalsOnly ? integerBelow(random, Math.min(result.length, 256)) : integerBelow(random, result.length);
      result = result.subarray(0, cut);
      steps.push(`truncated to ${cut} bytes`);
    }
  }
  if (steps.length === 0 && result.length > 0) steps.push(generic.bitFlips!(result, random, image)!);
  return { index, bytes: result, description: `#${index} ${image.name}: ${steps.join("; ")}`, valid: false };
}

// ---------- the server under test ----------

interface Server {
  child: ChildProcess;
  url: string;
  apiKey: string;
  metricsUrl: string | undefined;
  exited: Promise<number | null>;
  logTail: string[];
}

const dataDirectories: string[] = [];
function startServer(): Promise<Server> {
  const dataDirectory = mkdtempSync(join(tmpdir(), "cutline-fuzz-"));
  dataDirectories.push(dataDirectory);
  const environment: NodeJS.ProcessEnv = { ...process.env, CUTLINE_DATA_DIR: dataDirectory, PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "error", INFERENCE_WARMUP_RUNS: "1" };
  // Embedded defaults: the fuzzer owns every byte of its server's state.
  delete environment.DATABASE_URL;
  delete environment.NATS_URL;
  delete environment.CUTLINE_API_KEY;
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "scripts", "fuzz-node.ts")], { cwd: root, env: environment, stdio: ["pipe", "pipe", "pipe"] });
  const logTail: string[] = [];
  const remember = (line: string) => {
    logTail.push(line.slice(0, 2000));
    if (logTail.length > 40) logTail.shift();
  };
  createInterface({ input: child.stderr! }).on("line", remember);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the fuzz server did not start in 300 s:\n${logTail.join("\n")}`)), 300_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      remember(line);
      if (!line.startsWith("{")) return;
      try {
        const parsed = JSON.parse(line) as { url?: string; apiKey?: string; metricsUrl?: string };
        if (parsed.url && parsed.apiKey) {
          clearTimeout(timer);
          resolve({ child, url: parsed.url, apiKey: parsed.apiKey, metricsUrl: parsed.metricsUrl, exited, logTail });
        }
      } catch {
        // A log line, not the ready line.
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the fuzz server exited (${code}) before it was ready:\n${logTail.join("\n")}`));
    });
  });
}

function rssMbOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function scrape(metricsUrl: string | undefined): Promise<{ stallMs?: number; blockMs?: number; rssMb?: number }> {
  if (!metricsUrl) return {};
  try {
    const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
    const value = (name: string) => {
      const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
      return match ? Number(match[1]) : undefined;
    };
    const stall = value("cutline_event_loop_delay_max_seconds");
    const active = value("cutline_event_loop_active_seconds");
    const rss = value("process_resident_memory_bytes");
    return {
      stallMs: stall === undefined ? undefined : stall * 1000,
      // No callback blocked longer than the loop stalled, nor longer than it ran in the window.
      blockMs: stall === undefined || active === undefined ? undefined : Math.min(stall, active) * 1000,
      rssMb: rss === undefined ? undefined : rss / 1024 / 1024,
    };
  } catch {
    return {};
  }
}

// ---------- the run ----------

const stableCode = /^[a-z][a-z0-9_]*$/;
const summary = {
  sent: 0,
  ok: 0,
  clientErrors: 0,
  serverErrors: 0,
  crashes: 0,
  transportErrors: 0,
  unstableCodes: 0,
  maxRssMb: 0,
  maxEventLoopDelayMs: 0,
  // Upper bound on the longest single block of the event loop: the delay above, less the time
  // the server's thread waited for a core (on a loaded machine the delay counts that too).
  maxEventLoopBlockMs: 0,
  codes: {} as Record<string, number>,
  seed,
  from,
  count,
  mix: args.mix,
  seconds: 0,
  /** True when SIGINT ended the run before `count` samples. */
  interrupted: false,
};
const findings: string[] = [];
function finding(text: string): void {
  if (findings.length < 10) {
    findings.push(text);
    console.log(`FINDING ${text}`);
  }
}

const started = Date.now();
const seeds = await seedImages(args["dev-images"]!);
console.log(`fuzz: ${seeds.length} seed images (${seeds.filter((image) => !image.small).length} from ${args["dev-images"]}), seed ${seed}, samples ${from}..${from + count - 1}`);
let server = await startServer();
let restarting: Promise<void> | undefined;
let stopping = false;
// Startup (model load, migrations) stalls the loop; only stalls after the first scrape count.
await scrape(server.metricsUrl);
console.log(`fuzz: server ready, RSS ${Math.round(rssMbOf(server.child.pid) ?? 0)} MB before the first image`);

function watchCrash(current: Server): void {
  current.exited.then(async (code) => {
    if (stopping) return;
    summary.crashes++;
    finding(`server exited with ${code}; last log lines:\n${current.logTail.slice(-10).join("\n")}`);
    restarting = (async () => {
      server = await startServer();
      await scrape(server.metricsUrl);
      watchCrash(server);
      restarting = undefined;
    })();
  });
}
watchCrash(server);

const sampler = setInterval(async () => {
  const rss = rssMbOf(server.child.pid);
  if (rss !== undefined) summary.maxRssMb = Math.max(summary.maxRssMb, rss);
  // One request at a time: send() scrapes after each, so each stall is pinned on its request.
  const metrics = concurrency === 1 ? {} : await scrape(server.metricsUrl);
  if (metrics.stallMs !== undefined) summary.maxEventLoopDelayMs = Math.max(summary.maxEventLoopDelayMs, metrics.stallMs);
  if (metrics.blockMs !== undefined) summary.maxEventLoopBlockMs = Math.max(summary.maxEventLoopBlockMs, metrics.blockMs);
  if (rss === undefined && metrics.rssMb !== undefined) summary.maxRssMb = Math.max(summary.maxRssMb, metrics.rssMb);
}, 250);

async function send(sample: Sample): Promise<void> {
  await sendOnce(sample);
  if (concurrency !== 1) return;
  const { stallMs, blockMs } = await scrape(server.metricsUrl);
  if (stallMs === undefined) return;
  summary.maxEventLoopDelayMs = Math.max(summary.maxEventLoopDelayMs, stallMs);
  summary.maxEventLoopBlockMs = Math.max(summary.maxEventLoopBlockMs, blockMs ?? stallMs);
  if (stallMs > stallReportMs) console.log(`STALL ${Math.round(stallMs)} ms (busy ${Math.round(blockMs ?? stallMs)} ms) after ${sample.description} (${sample.bytes.length} bytes)`);
}

async function sendOnce(sample: Sample): Promise<void> {
  if (restarting) await restarting;
  const current = server;
  const form = new FormData();
  form.set("image_file", new Blob([sample.bytes]), "fuzz.bin");
  form.set("size", "preview");
  summary.sent++;
  let response: Response;
  try {
    response = await fetch(`${current.url}/v1/matting`, {
      method: "POST",
      headers: { "x-api-key": current.apiKey },
      body: form,
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
  } catch (error) {
    // A crash is counted once by its exit; requests it cut are not findings of their own.
    if (current.child.exitCode === null && current.child.signalCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (current.child.exitCode !== null || current.child.signalCode !== null) return;
    summary.transportErrors++;
    finding(`transport error ${String((error as Error).cause ?? error)} on ${sample.description}`);
    return;
  }
  const body = Buffer.from(await response.arrayBuffer());
  if (response.status >= 200 && response.status < 300) {
    summary.ok++;
    return;
  }
  let code = "";
  try {
    code = String((JSON.parse(body.toString("utf8")) as { errors?: { code?: string }[] }).errors?.[0]?.code ?? "");
  } catch {
    code = "";
  }
  const key = `${response.status} ${code || "(no code)"}`;
  summary.codes[key] = (summary.codes[key] ?? 0) + 1;
  if (response.status >= 500) {
    summary.serverErrors++;
    finding(`${response.status} ${body.toString("utf8").slice(0, 300)} on ${sample.description}`);
    return;
  }
  summary.clientErrors++;
  if (!stableCode.test(code)) {
    summary.unstableCodes++;
    finding(`${response.status} without a stable code: ${body.toString("utf8").slice(0, 300)} on ${sample.description}`);
  }
  if (sample.valid) finding(`unmutated image refused: ${response.status} ${code} on ${sample.description}`);
}

// Ctrl-C (SIGINT) ends the run early but still prints the summary of what was sent.
let interrupted = false;
process.once("SIGINT", () => {
  interrupted = true;
  console.log("fuzz: SIGINT: finishing the requests in flight, then the summary");
});

let next = from;
await Promise.all(
  Array.from({ length: Math.max(1, concurrency) }, async () => {
    while (!interrupted && next < from + count) {
      const sample = buildSample(next++, seeds);
      await send(sample);
      if (summary.sent % 100 === 0) console.log(`fuzz: ${summary.sent} sent, ${summary.ok} ok, ${summary.clientErrors} 4xx, ${summary.serverErrors} 5xx, ${summary.crashes} crashes`);
    }
  }),
);

// Let the last stalls reach a scrape before the server goes.
await new Promise((resolve) => setTimeout(resolve, 600));
clearInterval(sampler);
const final = await scrape(server.metricsUrl);
if (final.stallMs !== undefined) summary.maxEventLoopDelayMs = Math.max(summary.maxEventLoopDelayMs, final.stallMs);
if (final.blockMs !== undefined) summary.maxEventLoopBlockMs = Math.max(summary.maxEventLoopBlockMs, final.blockMs);
stopping = true;
server.child.kill("SIGTERM");
const killer = setTimeout(() => server.child.kill("SIGKILL"), 20_000);
await server.exited;
clearTimeout(killer);
for (const directory of dataDirectories) rmSync(directory, { recursive: true, force: true });
summary.maxRssMb = Math.round(summary.maxRssMb);
summary.maxEventLoopDelayMs = Math.round(summary.maxEventLoopDelayMs);
summary.maxEventLoopBlockMs = Math.round(summary.maxEventLoopBlockMs);
summary.seconds = Math.round((Date.now() - started) / 1000);
summary.interrupted = interrupted;
console.log(JSON.stringify(summary));

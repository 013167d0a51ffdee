// The container of a video from its first bytes (file names lie): what the gateway checks before
// it probes, quotes or holds anything, and what the probe checks again before it runs ffprobe.
import { open } from "node:fs/promises";
import type { VideoContainer } from "./video-formats.ts";

/** Bytes read from the start of a file to sniff its container (and, for a refusal, an image format). */
export const SNIFF_BYTES = 64;

function ascii(bytes: Uint8Array, start: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

/** QuickTime files written before the ftyp box existed start with one of these. */
const quickTimeLeadingBoxes = new Set(["moov", "mdat", "wide", "free", "skip", "pnot"]);
/** ISO media brands that are still images, not video (HEIF, AVIF). */
const stillImageBrands = new Set(["heic", "heix", "heim", "heis", "mif1", "msf1", "mif2", "avif", "avis", "crx "]);

/** The container, from the bytes alone; undefined for anything but MP4, MOV and WebM. */
export function sniffVideoContainer(bytes: Uint8Array): VideoContainer | undefined {
  if (bytes.length >= 12 && ascii(bytes, 4, 4) === "ftyp") {
    const major = ascii(bytes, 8, 4);
    if (stillImageBrands.has(major)) return undefined;
    return major === "qt  " ? "mov" : "mp4";
  }
  if (bytes.length >= 8 && quickTimeLeadingBoxes.has(ascii(bytes, 4, 4))) return "mov";
  if (bytes.length >= 4 && bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) {
    // The EBML header names its DocType early: "webm", or "matroska" (MKV, not accepted).
    return ascii(bytes, 0, Math.min(bytes.length, SNIFF_BYTES)).includes("webm") ? "webm" : undefined;
  }
  return undefined;
}

/** The first SNIFF_BYTES of a file (fewer when it is shorter). */
export async function headOfFile(path: string): Promise<Uint8Array> {
  const file = await open(path, "r");
  try {
    const head = new Uint8Array(SNIFF_BYTES);
    const { bytesRead } = await file.read(head, 0, SNIFF_BYTES, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

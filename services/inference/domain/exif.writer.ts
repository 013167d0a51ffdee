// Carries an input's EXIF block into an encoded output on request (`keep_exif`). The pixels
// are re-encoded from raw RGBA, so the encoder has no EXIF of its own to keep; the block is
// spliced into the container instead, with its orientation reset to 1 because the pixels are
// already upright.
import { crc32 } from "node:zlib";

const exifHeader = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]; // "Exif\0\0"

/** The TIFF part of an EXIF block, whether or not it starts with "Exif\0\0". */
function tiffOf(exif: Uint8Array): Uint8Array {
  return exifHeader.every((value, index) => exif[index] === value) ? exif.subarray(6) : exif;
}

/** A copy with IFD0's Orientation tag (0x0112) set to 1 (top-left). */
export function withUprightOrientation(exif: Uint8Array): Uint8Array {
  const tiff = tiffOf(exif).slice();
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  try {
    const little = tiff[0] === 0x49;
    const ifd = view.getUint32(4, little);
    const count = view.getUint16(ifd, little);
    for (let index = 0; index < count; index++) {
      const entry = ifd + 2 + index * 12;
      if (view.getUint16(entry, little) === 0x0112) view.setUint16(entry + 8, 1, little);
    }
  } catch {
    // A malformed block is kept as it is: the tag could not be found, so it cannot mislead.
  }
  return tiff;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const result = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}

function uint32BigEndian(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

/** JPEG: an APP1 segment right after SOI. */
export function insertExifIntoJpeg(jpeg: Uint8Array, exif: Uint8Array): Uint8Array {
  const payload = concat([new Uint8Array(exifHeader), withUprightOrientation(exif)]);
  if (payload.length + 2 > 0xffff) return jpeg;
  const segment = new Uint8Array(4 + payload.length);
  segment.set([0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 0xff]);
  segment.set(payload, 4);
  return concat([jpeg.subarray(0, 2), segment, jpeg.subarray(2)]);
}

/** PNG: an eXIf chunk right after IHDR (PNG 1.5 / PNG 3rd edition). */
export function insertExifIntoPng(png: Uint8Array, exif: Uint8Array): Uint8Array {
  const data = withUprightOrientation(exif);
  const type = new TextEncoder().encode("eXIf");
  const chunk = concat([uint32BigEndian(data.length), type, data, uint32BigEndian(crc32(concat([type, data])) >>> 0)]);
  const afterHeader = 8 + 8 + 13 + 4; // signature, IHDR length+type, IHDR data, CRC
  return concat([png.subarray(0, afterHeader), chunk, png.subarray(afterHeader)]);
}

/** WebP: an EXIF chunk in the extended (VP8X) format, converting a simple file when needed. */
export function insertExifIntoWebp(webp: Uint8Array, exif: Uint8Array, width: number, height: number): Uint8Array {
  const data = withUprightOrientation(exif);
  const chunk = (fourcc: string, body: Uint8Array) => {
    const header = new Uint8Array(8);
    header.set(new TextEncoder().encode(fourcc));
    new DataView(header.buffer).setUint32(4, body.length, true);
    return concat([header, body, body.length % 2 === 1 ? new Uint8Array(1) : new Uint8Array(0)]);
  };
  let chunks = webp.subarray(12);
  const firstChunk = String.fromCharCode(...chunks.subarray(0, 4));
  if (firstChunk === "VP8X") {
    chunks = chunks.slice();
    chunks[8]! |= 0x08;
  } else {
    const vp8x = new Uint8Array(10);
    vp8x[0] = 0x08;
    const view = new DataView(vp8x.buffer);
    view.setUint16(4, (width - 1) & 0xffff, true);
    vp8x[6] = ((width - 1) >> 16) & 0xff;
    view.setUint16(7, (height - 1) & 0xffff, true);
    vp8x[9] = ((height - 1) >> 16) & 0xff;
    chunks = concat([chunk("VP8X", vp8x), chunks]);
  }
  const body = concat([new TextEncoder().encode("WEBP"), chunks, chunk("EXIF", data)]);
  const header = new Uint8Array(8);
  header.set(new TextEncoder().encode("RIFF"));
  new DataView(header.buffer).setUint32(4, body.length, true);
  return concat([header, body]);
}

// Inputs built in code, shared by the decoder tests and the image fuzzer.
import { encode as encodeBmp } from "bmp-ts";

/** A BMP of raw RGBA pixels (bmp-ts encodes from ABGR; alpha is dropped at 24 bits). */
export function bmpFromRgba(rgba: Uint8Array, width: number, height: number, bitPP: 24 | 32): Uint8Array {
  const abgr = Buffer.alloc(rgba.length);
  for (let offset = 0; offset < rgba.length; offset += 4) {
    abgr[offset] = 255;
    abgr[offset + 1] = rgba[offset + 2]!;
    abgr[offset + 2] = rgba[offset + 1]!;
    abgr[offset + 3] = rgba[offset]!;
  }
  return encodeBmp({ data: abgr, width, height, bitPP }).data;
}

/** The black-box finding: about 1 KB of RLE8 BMP that declares `width`×`height` pixels. */
export function rleBmpClaiming(width: number, height: number): Uint8Array {
  const bytes = Buffer.alloc(54 + 1024 + 4);
  bytes.write("BM", 0, "latin1");
  bytes.writeUInt32LE(bytes.length, 2);
  bytes.writeUInt32LE(54 + 1024, 10); // pixels after the 54-byte headers and a 256-colour palette
  bytes.writeUInt32LE(40, 14); // BITMAPINFOHEADER
  bytes.writeInt32LE(width, 18);
  bytes.writeInt32LE(height, 22);
  bytes.writeUInt16LE(1, 26); // planes
  bytes.writeUInt16LE(8, 28); // bits per pixel
  bytes.writeUInt32LE(1, 30); // BI_RLE8
  bytes.writeUInt32LE(256, 46); // colours used
  bytes.set([0x04, 0x01, 0x00, 0x01], 54 + 1024); // one run of 4 pixels, then end of bitmap
  return bytes;
}

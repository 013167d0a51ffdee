// The format of an upload, from its bytes only: file names and declared content types lie.

export type AcceptedFormat = "jpeg" | "png" | "webp" | "bmp" | "tiff" | "heif" | "gif";

export type Sniffed =
  | { accepted: true; format: AcceptedFormat }
  | { accepted: false; format: string; advice: string };

const convertAdvice = "convert it to JPEG, PNG or WebP and upload again";

function ascii(bytes: Uint8Array, start: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

function startsWith(bytes: Uint8Array, signature: readonly number[], offset = 0): boolean {
  return signature.every((value, index) => bytes[offset + index] === value);
}

const heifBrands = new Set(["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs", "mif1", "msf1", "mif2"]);

export function sniffImageFormat(bytes: Uint8Array): Sniffed {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return { accepted: true, format: "jpeg" };
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { accepted: true, format: "png" };
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") return { accepted: true, format: "webp" };
  if (ascii(bytes, 0, 6) === "GIF87a" || ascii(bytes, 0, 6) === "GIF89a") return { accepted: true, format: "gif" };
  if (ascii(bytes, 0, 2) === "BM" && bytes.length > 26) return { accepted: true, format: "bmp" };
  if (ascii(bytes, 4, 4) === "ftyp") return sniffIsoMedia(bytes);
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) return sniffTiff(bytes);
  return sniffRejected(bytes);
}

function sniffIsoMedia(bytes: Uint8Array): Sniffed {
  const boxSize = Math.min(((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0, bytes.length, 256);
  const brands = [ascii(bytes, 8, 4)];
  for (let offset = 16; offset + 4 <= boxSize; offset += 4) brands.push(ascii(bytes, offset, 4));
  if (brands[0] === "crx ") return { accepted: false, format: "Canon CR3 (camera RAW)", advice: rawAdvice };
  if (brands.includes("avif") || brands.includes("avis")) {
    return { accepted: false, format: "AVIF", advice: convertAdvice };
  }
  if (brands.some((brand) => heifBrands.has(brand))) return { accepted: true, format: "heif" };
  if (brands.some((brand) => ["isom", "mp41", "mp42", "qt  ", "M4V ", "3gp4", "dash"].includes(brand))) {
    return { accepted: false, format: "MP4/QuickTime video", advice: "send videos to the video endpoint, or upload a still image" };
  }
  return { accepted: false, format: `ISO media (brand "${brands[0]!.trim()}")`, advice: convertAdvice };
}

const rawAdvice = "export the photo as JPEG or TIFF from your camera or photo editor";

/** TIFF, unless the TIFF container holds a camera RAW file (CR2, NEF, ARW, DNG, ...). */
function sniffTiff(bytes: Uint8Array): Sniffed {
  if (ascii(bytes, 8, 2) === "CR") return { accepted: false, format: "Canon CR2 (camera RAW)", advice: rawAdvice };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const little = bytes[0] === 0x49;
  try {
    const ifd = view.getUint32(4, little);
    const count = view.getUint16(ifd, little);
    let make = "";
    let hasSubImages = false;
    for (let index = 0; index < count; index++) {
      const entry = ifd + 2 + index * 12;
      const tag = view.getUint16(entry, little);
      if (tag === 0xc612) return { accepted: false, format: "DNG (camera RAW)", advice: rawAdvice };
      if (tag === 0x828e || tag === 0x828d) return { accepted: false, format: "camera RAW (CFA sensor data)", advice: rawAdvice };
      if (tag === 0x014a) hasSubImages = true;
      if (tag === 0x010f) {
        const length = view.getUint32(entry + 4, little);
        const offset = length <= 4 ? entry + 8 : view.getUint32(entry + 8, little);
        make = ascii(bytes, offset, Math.min(length, 32)).replace(/\0+$/, "");
      }
    }
    // RAW formats that reuse the TIFF container carry the raw data in sub-IFDs next to a
    // camera maker tag; an ordinary multi-page or scanned TIFF has neither together.
    if (hasSubImages && /^(NIKON|SONY|Canon|PENTAX|OLYMPUS|FUJIFILM|Panasonic|LEICA|SAMSUNG|Hasselblad)/i.test(make)) {
      return { accepted: false, format: `${make.split(" ")[0]} camera RAW`, advice: rawAdvice };
    }
  } catch {
    // A truncated directory is the decoder's problem; it reports a corrupt image.
  }
  return { accepted: true, format: "tiff" };
}

function sniffRejected(bytes: Uint8Array): Sniffed {
  const head = ascii(bytes, 0, 16);
  if (head.startsWith("%PDF")) return { accepted: false, format: "PDF", advice: "export the page as a PNG or JPEG image first" };
  if (head.startsWith("8BPS")) return { accepted: false, format: "Photoshop PSD", advice: "export a flattened PNG or JPEG from Photoshop" };
  if (head.startsWith("IIRO") || head.startsWith("IIRS") || head.startsWith("MMOR")) {
    return { accepted: false, format: "Olympus ORF (camera RAW)", advice: rawAdvice };
  }
  if (head.startsWith("IIU\0")) return { accepted: false, format: "Panasonic RW2 (camera RAW)", advice: rawAdvice };
  if (head.startsWith("FUJIFILMCCD-RAW")) return { accepted: false, format: "Fujifilm RAF (camera RAW)", advice: rawAdvice };
  if (startsWith(bytes, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20]) || startsWith(bytes, [0xff, 0x4f, 0xff, 0x51])) {
    return { accepted: false, format: "JPEG 2000", advice: convertAdvice };
  }
  if (startsWith(bytes, [0xff, 0x0a]) || startsWith(bytes, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20])) {
    return { accepted: false, format: "JPEG XL", advice: convertAdvice };
  }
  if (startsWith(bytes, [0x00, 0x00, 0x01, 0x00])) return { accepted: false, format: "ICO", advice: convertAdvice };
  if (startsWith(bytes, [0x76, 0x2f, 0x31, 0x01])) return { accepted: false, format: "OpenEXR", advice: convertAdvice };
  if (startsWith(bytes, [0x1f, 0x8b])) return { accepted: false, format: "gzip archive", advice: "upload the image itself, not an archive" };
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return { accepted: false, format: "ZIP archive", advice: "upload the image itself, not an archive" };
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 1024)).trimStart().toLowerCase();
  if (text.startsWith("<svg") || ((text.startsWith("<?xml") || text.startsWith("<!doctype svg")) && text.includes("<svg"))) {
    return { accepted: false, format: "SVG", advice: "render the SVG to a PNG first (vector images have no pixels to segment)" };
  }
  if (bytes.length === 0) return { accepted: false, format: "empty file", advice: "upload a JPEG, PNG, WebP, BMP, TIFF, HEIC or GIF image" };
  return {
    accepted: false,
    format: "unknown",
    advice: "upload a JPEG, PNG, WebP, BMP, TIFF, HEIC or static GIF image",
  };
}

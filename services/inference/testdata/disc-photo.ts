// A photo the engine's specs cut out: simple enough that the model's answer is known.
import sharp from "sharp";

/** A plain scene the model segments: a dark disc on a light, slightly textured background. */
export async function discPhoto(width = 320, height = 240): Promise<Uint8Array> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="#e8e4dc"/><circle cx="${width / 2}" cy="${height / 2}" r="${height / 3}" fill="#2a3f8f"/></svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 92 }).toBuffer();
}

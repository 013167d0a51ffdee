// remove.bg's `POST /v1.0/removebg` parameters -> our ImageOptions, or the refusal remove.bg
// itself gives (its error code and title from its OpenAPI 1.0.0, our detail naming the value).
// Pure: the route reads the body and hands the fields here as strings.
//
// What we cannot do is never silently wrong: it is accepted and ignored only where remove.bg
// documents it as optional and without effect for most subjects (add_shadow, semitransparency,
// shadow_method, type, type_level), otherwise refused with remove.bg's code for that parameter.
import { qualityForSize, qualityOf } from "../../common/images/quality.ts";
import { create } from "@bufbuild/protobuf";
import { ImageOptionsSchema, OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { opaqueColourOf } from "./opaque-colour.ts";

/** One remove.bg error, as its `errors[]` entries read. */
export interface RemoveBgError {
  /** remove.bg's title for the code (its OpenAPI example), so clients that show `title` read the same. */
  title: string;
  /** remove.bg's machine-readable code: `invalid_size`, `missing_source`, ... */
  code: string;
  /** The specifics: the value given and what is accepted here. */
  detail: string;
}

export type ImageSource = "image_file" | "image_file_b64" | "image_url";
export type BackgroundSource = "bg_color" | "bg_image_url" | "bg_image_file";

export interface RemoveBgRequest {
  /** The one image source given. */
  source: ImageSource;
  /** `bg_image_file` was given: the route puts its bytes in `options.backgroundImage`. */
  backgroundSource: BackgroundSource | undefined;
  /**
   * format=zip: the job renders a PNG (`options.format`), which the route answers as remove.bg's
   * zip of color.jpg (its RGB) and alpha.png (its alpha as a grayscale matte).
   */
  zip: boolean;
  options: ImageOptions;
}

export type RemoveBgOutcome = { ok: true; request: RemoveBgRequest } | { ok: false; error: RemoveBgError };

/** The text fields of the request (form, JSON or urlencoded), and which file parts a multipart body carried. */
export interface RemoveBgFields {
  fields: Readonly<Record<string, string | undefined>>;
  files: ReadonlySet<"image_file" | "bg_image_file">;
}

/** Largest crop margin on each side, in percent of the subject's size (remove.bg: "50% of the subject dimensions"). */
export const CROP_MARGIN_PERCENT_MAX = 50;
/** Smallest and largest `scale`, in percent (remove.bg: "from 10% to 100%"). */
export const SCALE_PERCENT_MIN = 10;
export const SCALE_PERCENT_MAX = 100;

class Refusal extends Error {
  constructor(readonly error: RemoveBgError) {
    super(error.detail);
  }
}

function refuse(code: string, title: string, detail: string): never {
  throw new Refusal({ title, code, detail });
}

// Titles as remove.bg's OpenAPI examples give them; parameters it gives no example for follow its pattern.
const INVALID = (parameter: string) => `Invalid ${parameter} parameter given`;

function oneOf<T>(value: string, table: Readonly<Record<string, T>>, code: string, title: string, name: string): T {
  const key = value.toLowerCase();
  const found = Object.hasOwn(table, key) ? table[key] : undefined;
  if (found === undefined) refuse(code, title, `${name} "${value}" is not one of ${Object.keys(table).join(", ")}`);
  return found;
}

const BOOLEANS: Readonly<Record<string, boolean>> = { true: true, false: false, "1": true, "0": false };

function booleanOf(fields: RemoveBgFields["fields"], name: string, code: string): boolean | undefined {
  const value = present(fields, name);
  return value === undefined ? undefined : oneOf(value, BOOLEANS, code, INVALID(name), name);
}

function present(fields: RemoveBgFields["fields"], name: string): string | undefined {
  const value = fields[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

// remove.bg's sizes. preview/small/regular: at most 0.25 MP, like our preview. medium and hd: at
// most 1.5 and 4 MP (output_pixels_max). full/4k: the original resolution, ours capped by
// IMAGE_LONGEST_SIDE_STANDARD. auto: "the highest available", full here.
const SIZES: Readonly<Record<string, { size: OutputSize; outputPixelsMax: number }>> = {
  preview: { size: OutputSize.PREVIEW, outputPixelsMax: 0 },
  small: { size: OutputSize.PREVIEW, outputPixelsMax: 0 },
  regular: { size: OutputSize.PREVIEW, outputPixelsMax: 0 },
  medium: { size: OutputSize.FULL, outputPixelsMax: 1_500_000 },
  hd: { size: OutputSize.FULL, outputPixelsMax: 4_000_000 },
  full: { size: OutputSize.FULL, outputPixelsMax: 0 },
  "4k": { size: OutputSize.FULL, outputPixelsMax: 0 },
  auto: { size: OutputSize.FULL, outputPixelsMax: 0 },
};

function sizeOf(fields: RemoveBgFields["fields"]): { size: OutputSize; outputPixelsMax: number } {
  const value = present(fields, "size") ?? "preview"; // remove.bg's default
  return oneOf(value, SIZES, "invalid_size", "Invalid value for parameter 'size'", "size");
}

/** The background colour as "#rrggbb", or refused: a translucent one (4/8 digits below ff) is not rendered here. */
export function backgroundColourOf(value: string): string {
  const colour = opaqueColourOf(value);
  if (colour.ok) return colour.hex;
  if (colour.problem === "translucent") refuse("invalid_bg_color", "Invalid bg_color parameter given", `bg_color "${value}" is translucent; this server renders opaque backgrounds only (alpha ff, or 3/6 digits)`);
  refuse("invalid_bg_color", "Invalid bg_color parameter given", `bg_color "${value}" is not a hex colour (3, 4, 6 or 8 digits, with or without #) or a colour name like "green"`);
}

function backgroundOf(fields: RemoveBgFields["fields"], files: RemoveBgFields["files"]): { source: BackgroundSource | undefined; colour: string } {
  const given: BackgroundSource[] = [];
  if (present(fields, "bg_color") !== undefined) given.push("bg_color");
  if (present(fields, "bg_image_url") !== undefined) given.push("bg_image_url");
  if (files.has("bg_image_file")) given.push("bg_image_file");
  if (given.length > 1) {
    refuse("multiple_bg_sources", "Multiple background sources given: Please provide either the bg_color, the bg_image_url or the bg_image_file parameter.", `given: ${given.join(", ")}`);
  }
  const colour = given[0] === "bg_color" ? backgroundColourOf(present(fields, "bg_color")!) : "";
  return { source: given[0], colour };
}

// format=auto: "PNG if transparent regions exist, otherwise JPG". Behind an opaque background
// colour or image nothing is transparent: jpg; otherwise png. zip: rendered as PNG, which carries
// both of the zip's images (behind a background its alpha is opaque everywhere, as remove.bg's is).
const FORMATS: Readonly<Record<string, OutputFormat | "auto" | "zip">> = { auto: "auto", png: OutputFormat.PNG, jpg: OutputFormat.JPEG, jpeg: OutputFormat.JPEG, webp: OutputFormat.WEBP, zip: "zip" };

function formatOf(fields: RemoveBgFields["fields"], opaqueBackground: boolean): { format: OutputFormat; zip: boolean } {
  const value = present(fields, "format") ?? "auto";
  const format = oneOf(value, FORMATS, "invalid_format", "Invalid format parameter given", "format");
  if (format === "zip") return { format: OutputFormat.PNG, zip: true };
  if (format === "auto") return { format: opaqueBackground ? OutputFormat.JPEG : OutputFormat.PNG, zip: false };
  return { format, zip: false };
}

/** channels=alpha: the grayscale matte, which we answer as PNG (format auto or png). */
function channelsOf(fields: RemoveBgFields["fields"], format: OutputFormat): OutputFormat {
  const value = present(fields, "channels") ?? "rgba";
  const channels = oneOf(value, { rgba: "rgba", alpha: "alpha" } as const, "invalid_channels", "Invalid value for parameter 'channels'", "channels");
  if (channels === "rgba") return format;
  const requested = present(fields, "format")?.toLowerCase() ?? "auto";
  if (requested === "zip") {
    refuse("invalid_channels", "Invalid value for parameter 'channels'", "channels=alpha with format zip: the zip already carries the matte as alpha.png; use channels rgba with zip, or channels alpha with format png or auto");
  }
  if (!["auto", "png"].includes(requested)) {
    refuse("invalid_channels", "Invalid value for parameter 'channels'", `channels=alpha is answered as a grayscale PNG here; with format "${requested}" use format png or auto`);
  }
  return OutputFormat.MASK;
}

/** One CSS-like length: "10%", "30px" or a bare "0". */
function lengthOf(token: string): { value: number; unit: "%" | "px" } | undefined {
  const match = /^(\d+(?:\.\d+)?)(%|px)?$/i.exec(token);
  if (!match) return undefined;
  const value = Number(match[1]);
  if (match[2] === undefined) return value === 0 ? { value: 0, unit: "%" } : undefined;
  return { value, unit: match[2].toLowerCase() as "%" | "px" };
}

/** crop_margin: 1, 2 or 4 values; here one whole percent on every side (or 0), at most CROP_MARGIN_PERCENT_MAX. */
function cropMarginOf(fields: RemoveBgFields["fields"]): number {
  const value = present(fields, "crop_margin");
  if (value === undefined) return 0;
  const title = "Invalid crop_margin parameter given";
  const tokens = value.split(/\s+/);
  const lengths = tokens.map(lengthOf);
  if (![1, 2, 4].includes(tokens.length) || lengths.some((length) => length === undefined)) {
    refuse("invalid_crop_margin", title, `crop_margin "${value}" is not 1, 2 or 4 lengths like "10%" or "30px"`);
  }
  const nonZero = lengths.filter((length) => length!.value !== 0);
  if (nonZero.some((length) => length!.unit === "px")) refuse("invalid_crop_margin", title, `crop_margin "${value}": pixel margins are not offered by this server; give the margin in percent of the subject, like "10%"`);
  const percents = new Set(lengths.map((length) => length!.value));
  if (percents.size > 1) refuse("invalid_crop_margin", title, `crop_margin "${value}": this server adds the same margin on every side; give one value`);
  const percent = [...percents][0]!;
  if (!Number.isInteger(percent) || percent > CROP_MARGIN_PERCENT_MAX) {
    refuse("invalid_crop_margin", title, `crop_margin "${value}" must be a whole percent from 0% to ${CROP_MARGIN_PERCENT_MAX}% (CROP_MARGIN_PERCENT_MAX)`);
  }
  return percent;
}

/** scale: "original" (0) or a whole percent from SCALE_PERCENT_MIN to SCALE_PERCENT_MAX. */
function scaleOf(fields: RemoveBgFields["fields"]): number {
  const value = present(fields, "scale");
  if (value === undefined || value.toLowerCase() === "original") return 0;
  const match = /^(\d+)%$/.exec(value);
  const percent = match ? Number(match[1]) : Number.NaN;
  if (!(percent >= SCALE_PERCENT_MIN && percent <= SCALE_PERCENT_MAX)) {
    refuse("invalid_scale", "Invalid scale parameter given", `scale "${value}" is not "original" or a whole percent from ${SCALE_PERCENT_MIN}% to ${SCALE_PERCENT_MAX}%`);
  }
  return percent;
}

/** position: "original", "center", or one or two percents (horizontal, vertical) -> our subject_position. */
function positionOf(fields: RemoveBgFields["fields"], scaled: boolean): string {
  const value = present(fields, "position");
  const title = "Invalid position parameter given";
  if (value === undefined) return "";
  const lower = value.toLowerCase();
  if (lower === "original") {
    // Scaled here, the subject is always re-placed (centred by default): its original spot is not kept.
    if (scaled) refuse("invalid_position", title, 'position "original" with scale is not offered by this server; use "center" or percents');
    return "";
  }
  if (lower === "center") return "center";
  const tokens = lower.split(/\s+/);
  const percents = tokens.map((token) => /^(\d+(?:\.\d+)?)%$/.exec(token)?.[1]).map(Number);
  if (![1, 2].includes(tokens.length) || percents.some((percent) => !(percent >= 0 && percent <= 100))) {
    refuse("invalid_position", title, `position "${value}" is not "original", "center", or one or two percents from 0% to 100%`);
  }
  const [x, y = x] = percents as [number, number?];
  return `${x}% ${y}%`;
}

/**
 * roi: "x1 y1 x2 y2" in px or %. Only the whole image is a region this server can honour (its
 * model has no region of interest); any other is refused rather than ignored.
 */
function checkRoi(fields: RemoveBgFields["fields"]): void {
  const value = present(fields, "roi");
  if (value === undefined) return;
  const tokens = value.split(/\s+/);
  const lengths = tokens.map(lengthOf);
  if (tokens.length !== 4 || lengths.some((length) => length === undefined)) {
    refuse("invalid_roi", "Invalid roi parameter given", `roi "${value}" is not four coordinates "x1 y1 x2 y2" like "0% 0% 100% 100%"`);
  }
  const [x1, y1, x2, y2] = lengths as { value: number; unit: "%" | "px" }[];
  if (lengths.some((length) => length!.unit === "%" && length!.value > 100)) {
    refuse("roi_exceeds_bounds", "ROI exceeds image bounds", `roi "${value}" reaches past 100% of the image`);
  }
  if ((x1!.unit === x2!.unit && x1!.value >= x2!.value) || (y1!.unit === y2!.unit && y1!.value >= y2!.value)) {
    refuse("roi_region_empty", "ROI region is empty", `roi "${value}" defines an empty region`);
  }
  const whole = x1!.value === 0 && y1!.value === 0 && x2!.unit === "%" && x2!.value === 100 && y2!.unit === "%" && y2!.value === 100;
  if (!whole) refuse("invalid_roi", "Invalid roi parameter given", `roi "${value}": this server detects the foreground in the whole image only ("0% 0% 100% 100%")`);
}

// Accepted and ignored, as remove.bg documents them: hints and car-only effects.
const TYPES = { auto: true, person: true, product: true, car: true, animal: true, graphic: true, transportation: true } as const;
const TYPE_LEVELS = { none: true, "1": true, "2": true, latest: true } as const;
const SHADOW_METHODS = { latest: true, legacy: true } as const;

function checkIgnored(fields: RemoveBgFields["fields"]): void {
  const type = present(fields, "type");
  if (type !== undefined) oneOf(type, TYPES, "invalid_type", INVALID("type"), "type");
  const typeLevel = present(fields, "type_level");
  if (typeLevel !== undefined) oneOf(typeLevel, TYPE_LEVELS, "invalid_type_level", INVALID("type_level"), "type_level");
  const shadowMethod = present(fields, "shadow_method");
  if (shadowMethod !== undefined) oneOf(shadowMethod, SHADOW_METHODS, "invalid_shadow_method", INVALID("shadow_method"), "shadow_method");
  booleanOf(fields, "add_shadow", "invalid_add_shadow");
  booleanOf(fields, "semitransparency", "invalid_semitransparency");
}

function sourceOf(fields: RemoveBgFields["fields"], files: RemoveBgFields["files"]): ImageSource {
  const given: ImageSource[] = [];
  if (files.has("image_file")) given.push("image_file");
  if (present(fields, "image_file_b64") !== undefined) given.push("image_file_b64");
  if (present(fields, "image_url") !== undefined) given.push("image_url");
  if (given.length === 0) refuse("missing_source", "No image given", "Please provide the source image in the image_url, image_file or image_file_b64 parameter.");
  if (given.length > 1) refuse("multiple_sources", "Multiple image sources given: Please provide either the image_url, image_file or image_file_b64 parameter.", `given: ${given.join(", ")}`);
  return given[0]!;
}

/** The request's parameters checked in remove.bg's order of concern, the first problem refused. */
export function removeBgRequestOf({ fields, files }: RemoveBgFields): RemoveBgOutcome {
  try {
    const source = sourceOf(fields, files);
    const { size, outputPixelsMax } = sizeOf(fields);
    // remove.bg has no speed setting: the size picks one (qualityForSize) unless `quality` names it.
    const quality = qualityOf(present(fields, "quality"), qualityForSize(size));
    if (!quality.ok) refuse("invalid_quality", INVALID("quality"), quality.message);
    const background = backgroundOf(fields, files);
    const { format: requestedFormat, zip } = formatOf(fields, background.source !== undefined);
    const format = channelsOf(fields, requestedFormat);
    const cropToSubject = booleanOf(fields, "crop", "invalid_crop") ?? false;
    const cropMarginPercent = cropMarginOf(fields); // checked always; in effect only with crop=true, as documented
    const subjectScalePercent = scaleOf(fields);
    const subjectPosition = positionOf(fields, subjectScalePercent > 0);
    checkRoi(fields);
    checkIgnored(fields);
    const options = create(ImageOptionsSchema, {
      format,
      size,
      outputPixelsMax,
      backgroundColor: background.colour,
      cropToSubject,
      cropMarginPercent: cropToSubject ? cropMarginPercent : 0,
      subjectScalePercent,
      subjectPosition,
      quality: quality.quality,
    });
    return { ok: true, request: { source, backgroundSource: background.source, zip, options } };
  } catch (error) {
    if (error instanceof Refusal) return { ok: false, error: error.error };
    throw error;
  }
}

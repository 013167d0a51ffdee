// Photoroom's parameters -> our ImageOptions, or the refusal naming the parameter (its OpenAPI
// document: `POST /v1/segment`'s remove-background-post-params and `/v2/edit`'s query and form
// fields). Pure: the route reads the body or query and hands the fields here as strings.
//
// What we cannot do is never silently wrong: it is refused naming the parameter, except
// `despill` (v1), accepted and without effect (Photoroom documents it as optional, for subjects shot
// on a green screen; this server removes no colour spill). Generative edits (shadows, relighting,
// prompts, ...) are refused as a group, naming each one given.
import { create } from "@bufbuild/protobuf";
import { ImageOptionsSchema, OutputFormat, OutputSize, type ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { qualityForSize, qualityOf } from "../../common/images/quality.ts";
import { opaqueColourOf } from "./opaque-colour.ts";

/** One refusal: the parameter it names and Photoroom-style message; `missing_image` when no image came. */
export interface PhotoroomError {
  parameter: string;
  message: string;
  reason: "invalid_option" | "missing_image";
}

/** The text fields of the request (form or query), and which file parts a multipart body carried. */
export interface PhotoroomFields {
  fields: Readonly<Record<string, string | undefined>>;
  files: ReadonlySet<string>;
}

export type SegmentOutcome = { ok: true; options: ImageOptions } | { ok: false; error: PhotoroomError };

export interface EditRequest {
  source: "imageFile" | "imageUrl";
  /** Which background image field came: the route puts its bytes in `options.backgroundImage`. */
  backgroundSource: "background.imageFile" | "background.imageUrl" | undefined;
  options: ImageOptions;
}

export type EditOutcome = { ok: true; request: EditRequest } | { ok: false; error: PhotoroomError };

/** Largest padding or margin on a side, as a ratio of the output (Photoroom: "between 0 and 0.49"). */
export const SPACING_RATIO_MAX = 0.49;

class Refusal extends Error {
  constructor(readonly error: PhotoroomError) {
    super(error.message);
  }
}

function refuse(parameter: string, message: string, reason: PhotoroomError["reason"] = "invalid_option"): never {
  throw new Refusal({ parameter, message: `${parameter}: ${message}`, reason });
}

function present(fields: PhotoroomFields["fields"], name: string): string | undefined {
  const value = fields[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function oneOf<T>(fields: PhotoroomFields["fields"], name: string, table: Readonly<Record<string, T>>, fallback: string): T {
  const value = present(fields, name) ?? fallback;
  if (!Object.hasOwn(table, value)) refuse(name, `"${value}" is not one of ${Object.keys(table).join(", ")}`);
  return table[value]!;
}

const BOOLEANS: Readonly<Record<string, boolean>> = { true: true, false: false };

function colourOf(name: string, value: string): string {
  const colour = opaqueColourOf(value);
  if (colour.ok) return colour.hex;
  if (colour.problem === "translucent") refuse(name, `"${value}" is translucent; this server renders opaque backgrounds only (alpha FF, or 6 digits)`);
  refuse(name, `"${value}" is not a hex colour (like FF0000 or #FF0000) or a colour name (like red)`);
}

function finish<T>(build: () => T): { ok: true; value: T } | { ok: false; error: PhotoroomError } {
  try {
    return { ok: true, value: build() };
  } catch (error) {
    if (error instanceof Refusal) return { ok: false, error: error.error };
    throw error;
  }
}

// /v1/segment's size: preview is at most 0.25 MP, as ours; medium and hd at most 1.5 and 4 MP
// (output_pixels_max); full the original resolution (Photoroom's 36 MP, ours capped by
// IMAGE_LONGEST_SIDE_STANDARD).
const SEGMENT_SIZES: Readonly<Record<string, { size: OutputSize; outputPixelsMax: number }>> = {
  preview: { size: OutputSize.PREVIEW, outputPixelsMax: 0 },
  medium: { size: OutputSize.FULL, outputPixelsMax: 1_500_000 },
  hd: { size: OutputSize.FULL, outputPixelsMax: 4_000_000 },
  full: { size: OutputSize.FULL, outputPixelsMax: 0 },
};

/** The `quality` parameter when given (refused naming the allowed values when unknown), else `byDefault`. */
function qualityParameterOf(fields: PhotoroomFields["fields"], byDefault: Quality): Quality {
  const parsed = qualityOf(present(fields, "quality"), byDefault);
  if (!parsed.ok) refuse("quality", parsed.message);
  return parsed.quality;
}

const SEGMENT_FORMATS: Readonly<Record<string, OutputFormat>> = { png: OutputFormat.PNG, jpg: OutputFormat.JPEG, webp: OutputFormat.WEBP };
const SEGMENT_FIELDS = new Set(["format", "channels", "bg_color", "size", "crop", "despill", "quality"]);

/** `POST /v1/segment`'s form fields (remove-background-post-params), Photoroom's defaults. */
export function segmentOptionsOf({ fields, files }: PhotoroomFields): SegmentOutcome {
  const outcome = finish(() => {
    const unknown = [...Object.keys(fields).filter((name) => !SEGMENT_FIELDS.has(name)), ...[...files].filter((name) => name !== "image_file")];
    if (unknown.length > 0) refuse(unknown.join(", "), `unsupported attributes; /v1/segment takes image_file, ${[...SEGMENT_FIELDS].join(", ")}`);
    if (!files.has("image_file")) refuse("image_file", "Please provide an image.", "missing_image");
    const { size, outputPixelsMax } = oneOf(fields, "size", SEGMENT_SIZES, "full");
    // Photoroom has no speed setting: the size picks one (qualityForSize) unless `quality` names it.
    const quality = qualityParameterOf(fields, qualityForSize(size));
    let format = oneOf(fields, "format", SEGMENT_FORMATS, "png");
    const channels = oneOf(fields, "channels", { rgba: "rgba", alpha: "alpha" } as const, "rgba");
    if (channels === "alpha") {
      if (format !== OutputFormat.PNG) refuse("channels", `alpha is answered as a grayscale PNG here; with format "${present(fields, "format")}" use format png`);
      format = OutputFormat.MASK;
    }
    const bgColor = present(fields, "bg_color");
    const cropToSubject = oneOf(fields, "crop", BOOLEANS, "false");
    oneOf(fields, "despill", BOOLEANS, "false"); // checked, then without effect (see the header)
    return create(ImageOptionsSchema, { format, size, outputPixelsMax, backgroundColor: bgColor === undefined ? "" : colourOf("bg_color", bgColor), cropToSubject, quality });
  });
  return outcome.ok ? { ok: true, options: outcome.value } : outcome;
}

// /v2/edit's generative and other edits this server does not make: refused, naming each one given.
// A name ending in "." is a group (every parameter under it). The OpenAPI document lists these too.
export const GENERATIVE_PREFIXES = [
  "background.prompt",
  "background.negativePrompt",
  "background.expandPrompt",
  "background.seed",
  "background.guidance.",
  "background.blur.",
  "shadow.",
  "lighting.",
  "textRemoval.",
  "beautify.",
  "flatLay.",
  "ghostMannequin.",
  "virtualModel.",
  "expand.",
  "uncrop.",
  "upscale.",
  "editWithAI.",
  "describeAnyChange.",
  "imageFromPrompt.",
  "outline.",
  "segmentation.",
  "templateId",
  "layers",
] as const;

/** Every /v2/edit parameter this mapper reads (the generative ones above are refused before). */
const EDIT_PARAMETERS = new Set([
  "imageFile",
  "imageUrl",
  "removeBackground",
  "background.color",
  "background.imageFile",
  "background.imageUrl",
  "background.scaling",
  "export.format",
  "export.dpi",
  "outputSize",
  "maxWidth",
  "maxHeight",
  "padding",
  "paddingTop",
  "paddingBottom",
  "paddingLeft",
  "paddingRight",
  "margin",
  "marginTop",
  "marginBottom",
  "marginLeft",
  "marginRight",
  "scaling",
  "horizontalAlignment",
  "verticalAlignment",
  "ignorePaddingAndSnapOnCroppedSides",
  "keepExistingAlphaChannel",
  "referenceBox",
  "preserveMetadata",
  "quality",
]);

/** A group ("shadow.") takes every name under it; a single parameter ("templateId") itself and its nested forms ("layers.x", "layers[0]"). */
function isGenerative(name: string): boolean {
  return GENERATIVE_PREFIXES.some((prefix) => (prefix.endsWith(".") ? name.startsWith(prefix) : name === prefix || name.startsWith(`${prefix}.`) || name.startsWith(`${prefix}[`)));
}

function checkUnoffered(names: readonly string[]): void {
  const generative = names.filter(isGenerative);
  if (generative.length > 0) refuse(generative.join(", "), "generative edits (AI backgrounds, shadows, relighting, text removal, outlines, prompts, templates, ...) are not offered by this server; it removes backgrounds, places the subject and composites a colour or image");
  const unknown = names.filter((name) => !EDIT_PARAMETERS.has(name));
  if (unknown.length > 0) refuse(unknown.join(", "), "unsupported attributes");
}

/** Photoroom's default for each of these, the only value this server honours (it has no other). */
const ONLY_DEFAULT: Readonly<Record<string, { value: string; why: string }>> = {
  removeBackground: { value: "true", why: "this route always removes the background (use POST /v1/smart-crop to keep it)" },
  scaling: { value: "fit", why: "the subject is always fitted whole (fill would crop it)" },
  keepExistingAlphaChannel: { value: "never", why: "the model always computes the cut-out" },
  referenceBox: { value: "subjectBox", why: "padding and margin are always around the subject" },
  preserveMetadata: { value: "never", why: "metadata is not carried into results" },
  ignorePaddingAndSnapOnCroppedSides: { value: "false", why: "cropped sides are not snapped to the edge here; padding applies on every side like margin" },
};

function checkOnlyDefaults(fields: PhotoroomFields["fields"]): void {
  for (const [name, { value, why }] of Object.entries(ONLY_DEFAULT)) {
    const given = present(fields, name);
    if (given === undefined) continue;
    if (name === "removeBackground" || name === "ignorePaddingAndSnapOnCroppedSides") oneOf(fields, name, BOOLEANS, value);
    if (given !== value) refuse(name, `"${given}" is not offered by this server; only "${value}": ${why}`);
  }
  for (const name of ["export.dpi", "maxWidth", "maxHeight"]) {
    if (present(fields, name) !== undefined) refuse(name, "is not offered by this server: results keep the resolution the model produced (see outputSize)");
  }
}

/** One padding or margin: a ratio 0..0.49 or a percent "0%".."49%"; pixel values are refused. */
function spacingRatioOf(name: string, value: string): number {
  if (/^\d+(\.\d+)?px$/i.test(value)) refuse(name, `"${value}": pixel values are not offered by this server; give a ratio like 0.1 or a percent like "10%"`);
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(value);
  const ratio = percent ? Number(percent[1]) / 100 : /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(ratio >= 0 && ratio <= SPACING_RATIO_MAX)) refuse(name, `"${value}" is not a number from 0 to ${SPACING_RATIO_MAX} or a percent from 0% to ${SPACING_RATIO_MAX * 100}% (SPACING_RATIO_MAX)`);
  return ratio;
}

/** The one ratio on every side of `padding` or `margin` (per-side values override it), or undefined when none is given. */
function uniformSpacingOf(fields: PhotoroomFields["fields"], base: "padding" | "margin"): number | undefined {
  const general = present(fields, base);
  const sides = ["Top", "Bottom", "Left", "Right"].map((side) => `${base}${side}`);
  if (general === undefined && sides.every((side) => present(fields, side) === undefined)) return undefined;
  const generalRatio = general === undefined ? 0 : spacingRatioOf(base, general);
  const ratios = sides.map((side) => (present(fields, side) === undefined ? generalRatio : spacingRatioOf(side, present(fields, side)!)));
  if (new Set(ratios).size > 1) refuse(`${base}Top, ${base}Bottom, ${base}Left, ${base}Right`, `this server keeps the same ${base} on every side; give ${base} alone or four equal values`);
  return ratios[0]!;
}

const HORIZONTAL: Readonly<Record<string, number>> = { left: 0, center: 50, right: 100 };
const VERTICAL: Readonly<Record<string, number>> = { top: 0, center: 50, bottom: 100 };

/** padding, margin and alignment -> subject_scale_percent and subject_position ("" and 0: the subject keeps its place). */
function placementOf(fields: PhotoroomFields["fields"], croppedSubject: boolean): { subjectScalePercent: number; subjectPosition: string } {
  const padding = uniformSpacingOf(fields, "padding");
  const margin = uniformSpacingOf(fields, "margin");
  const horizontal = present(fields, "horizontalAlignment") === undefined ? undefined : oneOf(fields, "horizontalAlignment", HORIZONTAL, "center");
  const vertical = present(fields, "verticalAlignment") === undefined ? undefined : oneOf(fields, "verticalAlignment", VERTICAL, "center");
  const spaced = padding !== undefined || margin !== undefined;
  if (spaced && croppedSubject) refuse(padding !== undefined ? "padding" : "margin", "with outputSize croppedSubject is not offered by this server; use outputSize originalImage (or auto)");
  // The subject's box fits the output less the margin, then less the padding (Photoroom: padding is a ratio of the output minus margins).
  const subjectScalePercent = spaced ? Math.max(1, Math.round(100 * (1 - 2 * (margin ?? 0)) * (1 - 2 * (padding ?? 0)))) : 0;
  if (!spaced && horizontal === undefined && vertical === undefined) return { subjectScalePercent, subjectPosition: "" };
  return { subjectScalePercent, subjectPosition: `${horizontal ?? 50}% ${vertical ?? 50}%` };
}

const EDIT_FORMATS: Readonly<Record<string, OutputFormat>> = { png: OutputFormat.PNG, jpeg: OutputFormat.JPEG, jpg: OutputFormat.JPEG, webp: OutputFormat.WEBP };

function editBackgroundOf(fields: PhotoroomFields["fields"], files: PhotoroomFields["files"]) {
  const color = present(fields, "background.color");
  const given = [
    ...(color !== undefined && color.toLowerCase() !== "transparent" ? ["background.color"] : []),
    ...(files.has("background.imageFile") ? ["background.imageFile"] : []),
    ...(present(fields, "background.imageUrl") !== undefined ? ["background.imageUrl"] : []),
  ];
  if (given.length > 1) refuse(given.join(", "), "give one background: a colour, an image file or an image URL");
  const scaling = present(fields, "background.scaling");
  if (scaling !== undefined) {
    if (!given[0]?.startsWith("background.image")) refuse("background.scaling", "can only be provided if background.imageUrl or background.imageFile is provided");
    oneOf(fields, "background.scaling", { fill: true, fit: true }, "fill");
    if (scaling !== "fill") refuse("background.scaling", `"${scaling}" is not offered by this server; the background image always fills the output`);
  }
  const backgroundColor = given[0] === "background.color" ? colourOf("background.color", color!) : "";
  const backgroundSource = given[0] === "background.color" ? undefined : (given[0] as EditRequest["backgroundSource"]);
  return { backgroundColor, backgroundSource };
}

/**
 * `/v2/edit`'s parameters (GET: the query, with imageUrl; POST: the multipart form). `names` are
 * every field name given (files included), so an unknown or generative one is refused by name.
 */
export function editRequestOf({ fields, files }: PhotoroomFields, method: "GET" | "POST"): EditOutcome {
  const outcome = finish((): EditRequest => {
    checkUnoffered([...Object.keys(fields).filter((name) => fields[name] !== undefined), ...files]);
    const sources = [...(files.has("imageFile") ? ["imageFile" as const] : []), ...(present(fields, "imageUrl") !== undefined ? ["imageUrl" as const] : [])];
    if (sources.length === 0) refuse(method === "GET" ? "imageUrl" : "imageFile", "must be provided", "missing_image");
    if (sources.length > 1) refuse("imageFile, imageUrl", "give one image: imageFile or imageUrl");
    checkOnlyDefaults(fields);
    const outputSize = present(fields, "outputSize") ?? "auto";
    if (/^\d+x\d+$/.test(outputSize)) refuse("outputSize", `"${outputSize}": a fixed output size in pixels is not offered by this server yet; use originalImage (or auto) or croppedSubject`);
    if (!["auto", "originalImage", "croppedSubject"].includes(outputSize)) refuse("outputSize", `"${outputSize}" is not auto, originalImage, croppedSubject or <width>x<height>`);
    const croppedSubject = outputSize === "croppedSubject";
    const { backgroundColor, backgroundSource } = editBackgroundOf(fields, files);
    const format = oneOf(fields, "export.format", EDIT_FORMATS, "png");
    const quality = qualityParameterOf(fields, Quality.BALANCED);
    const options = create(ImageOptionsSchema, { format, size: OutputSize.FULL, backgroundColor, cropToSubject: croppedSubject, ...placementOf(fields, croppedSubject), quality });
    return { source: sources[0]!, backgroundSource, options };
  });
  return outcome.ok ? { ok: true, request: outcome.value } : outcome;
}

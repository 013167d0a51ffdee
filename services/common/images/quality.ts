// The quality setting's names, parsed in one place for the gateway (REST, remove.bg, Photoroom, before any
// hold) and inference (Connect, before any model time), so that whatever the gateway lets through inference accepts.
import { OutputSize } from "../gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../gen/cutline/inference/v1/quality_pb.ts";

/** The names the APIs take, fastest first; balanced is the default. */
export const QUALITY_NAMES = ["fast", "balanced", "best"] as const;
export type QualityName = (typeof QUALITY_NAMES)[number];

const qualityByName: Record<QualityName, Quality> = { fast: Quality.FAST, balanced: Quality.BALANCED, best: Quality.BEST };

export type QualityParse = { ok: true; quality: Quality } | { ok: false; message: string };

/**
 * `fast`, `balanced` or `best` (any case); `""` (or undefined: not given) is `byDefault`, unspecified
 * (balanced) unless the API says otherwise; anything else names the allowed values.
 */
export function qualityOf(text: string | undefined, byDefault: Quality = Quality.UNSPECIFIED): QualityParse {
  const name = (text ?? "").trim().toLowerCase();
  if (name === "") return { ok: true, quality: byDefault };
  const quality = qualityByName[name as QualityName];
  if (quality === undefined) return { ok: false, message: `quality "${text}" is unknown; use one of ${QUALITY_NAMES.join(", ")}` };
  return { ok: true, quality };
}

/** The setting a quality value stands for; undefined for a value no version of the enum knows. */
export function qualityNameOf(quality: Quality): QualityName | undefined {
  switch (quality) {
    case Quality.FAST:
      return "fast";
    case Quality.BEST:
      return "best";
    case Quality.BALANCED:
    case Quality.UNSPECIFIED:
      return "balanced";
    default:
      return undefined;
  }
}

/** Undefined for a value the enum knows; else the problem, naming the allowed values (checked before any hold and again before the model). */
export function qualityProblem(quality: Quality): string | undefined {
  return qualityNameOf(quality) === undefined ? `quality ${quality} is unknown; use one of ${QUALITY_NAMES.join(", ")}` : undefined;
}

/**
 * The setting of a remove.bg or Photoroom call that names none: neither API has a speed setting,
 * so a preview-size result (at most 0.25 MP, which an 896² mask covers) is cut at fast and every
 * larger one at balanced. Their `quality` parameter (this server's own) overrides it.
 */
export function qualityForSize(size: OutputSize): Quality {
  return size === OutputSize.PREVIEW ? Quality.FAST : Quality.BALANCED;
}

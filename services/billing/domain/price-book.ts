import { assertInvariant, fail, type Outcome } from "./outcomes.ts";

/** Every priced operation, in the order balances list them. */
export const OPERATION_NAMES = ["remove_background", "smart_crop", "upscale", "video_remove_background"] as const;

/** Operations a book stored before upscaling was an operation may lack; every other one is required. */
const OPTIONAL_OPERATIONS: ReadonlySet<OperationName> = new Set(["upscale"]);
export type OperationName = (typeof OPERATION_NAMES)[number];

/** One resolution tier: inputs up to `maxPixels` cost `costMillicredits` (per image, or per started second of video). */
export interface ResolutionTier {
  readonly maxPixels: number;
  readonly costMillicredits: number;
}

export interface OperationPrice {
  readonly description: string;
  /** Added once per call, before the HD multiplier. */
  readonly baseMillicredits: number;
  /** Ascending by maxPixels; inputs above the last tier are refused. */
  readonly tiers: readonly ResolutionTier[];
  /** HD output multiplier in permille (1000 = no change); integer so the ledger never sees a float. */
  readonly hdMultiplierPermille: number;
  /** Video only: billed per started second; the longest video accepted. */
  readonly perStartedSecond?: boolean;
  readonly videoMillisecondsMax?: number;
  /**
   * Per-unit cost by quality ("best"), replacing the resolution tier's cost; a quality not listed
   * pays the tier's. Video at best is billed at one top rate whatever its resolution.
   */
  readonly qualityCostMillicredits?: Readonly<Record<string, number>>;
}

export interface PriceBook {
  readonly version: string;
  readonly operations: Readonly<Partial<Record<OperationName, OperationPrice>>> & Readonly<Record<Exclude<OperationName, "upscale">, OperationPrice>>;
  /** Priced add-ons by name, added after the multiplier. */
  readonly extras: Readonly<Record<string, number>>;
}

const MEGAPIXEL = 1_000_000;

/**
 * Smart Crop as the seeds sell it: 1.3 credits an image whatever its size (one tier, up to the
 * largest size matting prices), doubled for HD like matting.
 */
export const SMART_CROP_PRICE: OperationPrice = {
  description: "smart crop, image",
  baseMillicredits: 0,
  tiers: [{ maxPixels: 50 * MEGAPIXEL, costMillicredits: 1300 }],
  hdMultiplierPermille: 2000,
};

/** The book a new database starts with (the seed migration's, plus smart crop from 202611271800_smart_crop_price). */
export const DEFAULT_PRICE_BOOK: PriceBook = {
  version: "2026-11-smart-crop",
  operations: {
    remove_background: {
      description: "background removal, image",
      baseMillicredits: 0,
      tiers: [
        { maxPixels: MEGAPIXEL / 4, costMillicredits: 250 },
        { maxPixels: 1 * MEGAPIXEL, costMillicredits: 500 },
        { maxPixels: 4 * MEGAPIXEL, costMillicredits: 800 },
        { maxPixels: 12 * MEGAPIXEL, costMillicredits: 1100 },
        { maxPixels: 25 * MEGAPIXEL, costMillicredits: 1500 },
        { maxPixels: 50 * MEGAPIXEL, costMillicredits: 2000 },
      ],
      hdMultiplierPermille: 2000,
    },
    smart_crop: SMART_CROP_PRICE,
    video_remove_background: {
      description: "background removal, video per started second",
      baseMillicredits: 0,
      tiers: [
        { maxPixels: 1 * MEGAPIXEL, costMillicredits: 1000 },
        { maxPixels: 2_100_000, costMillicredits: 2000 },
        { maxPixels: 8_300_000, costMillicredits: 4000 },
      ],
      hdMultiplierPermille: 1500,
      perStartedSecond: true,
      videoMillisecondsMax: 10 * 60 * 1000,
    },
  },
  extras: { shadow: 200, upscale: 1000 },
};

export interface PriceRequest {
  readonly operation: OperationName;
  readonly pixels: number;
  readonly hd: boolean;
  readonly videoMilliseconds: number;
  readonly extras?: readonly string[];
  /** "fast", "balanced" or "best"; empty is balanced. Only a quality the operation prices changes the cost. */
  readonly quality?: string;
}

/** The exact cost of one operation in millicredits; the same inputs always give the same answer. */
export function priceOf(book: PriceBook, request: PriceRequest): Outcome<{ costMillicredits: number }> {
  const price = book.operations[request.operation];
  if (!price) return fail("invalid_argument", `unknown operation ${request.operation}`);
  if (!Number.isSafeInteger(request.pixels) || request.pixels <= 0) return fail("invalid_argument", "pixels must be a positive integer");
  const tier = price.tiers.find((candidate) => request.pixels <= candidate.maxPixels);
  if (!tier) {
    const largest = price.tiers[price.tiers.length - 1];
    assertInvariant(largest, `operation ${request.operation} has no price tier (validatePriceBook refuses such a book)`);
    return fail("resolution_too_large", `${request.pixels} pixels exceeds the largest priced size of ${largest.maxPixels} pixels`);
  }
  let units = 1;
  if (price.perStartedSecond) {
    if (!Number.isSafeInteger(request.videoMilliseconds) || request.videoMilliseconds <= 0) {
      return fail("invalid_argument", "video_milliseconds must be positive for video");
    }
    if (price.videoMillisecondsMax !== undefined && request.videoMilliseconds > price.videoMillisecondsMax) {
      return fail("video_too_long", `video of ${request.videoMilliseconds} ms exceeds the limit of ${price.videoMillisecondsMax} ms`);
    }
    units = Math.ceil(request.videoMilliseconds / 1000);
  }
  const unitCost = (request.quality ? price.qualityCostMillicredits?.[request.quality] : undefined) ?? tier.costMillicredits;
  const beforeMultiplier = price.baseMillicredits + unitCost * units;
  // Round up: a fraction of a millicredit is charged as one, never given away twice.
  let cost = request.hd ? Math.ceil((beforeMultiplier * price.hdMultiplierPermille) / 1000) : beforeMultiplier;
  for (const extra of new Set(request.extras ?? [])) {
    const extraCost = book.extras[extra];
    if (extraCost === undefined) return fail("unknown_extra", `unknown extra "${extra}"; known: ${Object.keys(book.extras).join(", ")}`);
    cost += extraCost;
  }
  return { ok: true, costMillicredits: cost };
}

/**
 * Reference operations for "how many more can I do": one per image tier, 1 s of video per tier,
 * and one per priced quality (video at best), in OPERATION_NAMES order (a stored book's key
 * order is jsonb's, not the editor's).
 */
export function referenceOperations(book: PriceBook): { description: string; operation: OperationName; costMillicredits: number }[] {
  const rows: { description: string; operation: OperationName; costMillicredits: number }[] = [];
  for (const operation of OPERATION_NAMES) {
    const price = book.operations[operation];
    if (!price) continue;
    const unit = price.perStartedSecond ? ", 1 s" : "";
    for (const tier of price.tiers) {
      const megapixels = (tier.maxPixels / MEGAPIXEL).toFixed(2).replace(/\.?0+$/, "");
      rows.push({ operation, description: `${price.description}, up to ${megapixels} MP${unit}`, costMillicredits: price.baseMillicredits + tier.costMillicredits });
    }
    for (const [quality, cost] of Object.entries(price.qualityCostMillicredits ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
      rows.push({ operation, description: `${price.description}, quality ${quality}${unit}`, costMillicredits: price.baseMillicredits + cost });
    }
  }
  return rows;
}

/**
 * Checks an edited price book before it is stored; returns every problem found, each naming its
 * field by path (`operations.remove_background.tiers[2].maxPixels`), under `prefix` when the book
 * sits inside a larger document (the plans file's `priceBook.`).
 */
export function validatePriceBook(book: PriceBook, prefix = ""): string[] {
  const problems: string[] = [];
  if (!book.version) problems.push(`${prefix}version is empty`);
  if (typeof book.operations !== "object" || book.operations === null) return [...problems, `${prefix}operations must be an object`];
  for (const name of Object.keys(book.operations)) {
    if (!(OPERATION_NAMES as readonly string[]).includes(name)) problems.push(`${prefix}operations.${name} is not an operation; known: ${OPERATION_NAMES.join(", ")}`);
  }
  for (const name of OPERATION_NAMES) {
    const price = book.operations[name];
    const path = `${prefix}operations.${name}`;
    if (!price) {
      if (!OPTIONAL_OPERATIONS.has(name)) problems.push(`${path} is missing`);
      continue;
    }
    problems.push(...operationPriceProblems(price, path));
  }
  for (const [extra, cost] of Object.entries(book.extras ?? {})) {
    if (!Number.isSafeInteger(cost) || cost < 0) problems.push(`${prefix}extras.${extra} must be a non-negative integer`);
  }
  return problems;
}

function operationPriceProblems(price: OperationPrice, path: string): string[] {
  const problems: string[] = [];
  if (typeof price.description !== "string" || !price.description) problems.push(`${path}.description must be a non-empty string`);
  if (!Number.isSafeInteger(price.baseMillicredits) || price.baseMillicredits < 0) problems.push(`${path}.baseMillicredits must be a non-negative integer`);
  if (!Number.isSafeInteger(price.hdMultiplierPermille) || price.hdMultiplierPermille < 1000) problems.push(`${path}.hdMultiplierPermille must be an integer ≥ 1000`);
  if (!Array.isArray(price.tiers) || price.tiers.length === 0) problems.push(`${path}.tiers is empty`);
  let previous = 0;
  for (const [index, tier] of (Array.isArray(price.tiers) ? price.tiers : []).entries()) {
    if (!Number.isSafeInteger(tier.maxPixels) || tier.maxPixels <= previous) problems.push(`${path}.tiers[${index}].maxPixels must be an integer above the previous tier`);
    if (!Number.isSafeInteger(tier.costMillicredits) || tier.costMillicredits <= 0) problems.push(`${path}.tiers[${index}].costMillicredits must be a positive integer`);
    previous = tier.maxPixels;
  }
  for (const [quality, cost] of Object.entries(price.qualityCostMillicredits ?? {})) {
    if (!Number.isSafeInteger(cost) || cost <= 0) problems.push(`${path}.qualityCostMillicredits.${quality} must be a positive integer`);
  }
  if (price.perStartedSecond !== undefined && typeof price.perStartedSecond !== "boolean") problems.push(`${path}.perStartedSecond must be true or false`);
  if (price.videoMillisecondsMax !== undefined && (!Number.isSafeInteger(price.videoMillisecondsMax) || price.videoMillisecondsMax <= 0)) {
    problems.push(`${path}.videoMillisecondsMax must be a positive integer`);
  }
  return problems;
}

/** How many more of each reference operation a balance buys, for the balance answer. */
export function affordableOperations(book: PriceBook, availableMillicredits: number): { operation: OperationName; description: string; count: number }[] {
  return referenceOperations(book).map((reference) => ({
    operation: reference.operation,
    description: reference.description,
    count: Math.floor(availableMillicredits / reference.costMillicredits),
  }));
}

/**
 * How long a loaded price book answers quotes without a query. Another process's new version
 * reaches this one within this time; this process's own edits at once.
 */
export const PRICE_BOOK_CACHE_MS = 5_000;

/** A cached book is fresh for PRICE_BOOK_CACHE_MS after loading; a clock that stepped back makes it stale, not fresh for as long as the step. */
export function isPriceBookFresh(loadedAt: Date, now: Date): boolean {
  const ageMs = now.getTime() - loadedAt.getTime();
  return ageMs >= 0 && ageMs < PRICE_BOOK_CACHE_MS;
}

// The catalogue an operator edits (deploy/plans/plans.json): plans with their rate limits and
// size limits, top-up packs and the price book, under one version. Parsed and checked here, pure;
// store/catalogue.store.ts reads the file and writes it into the tables the ledger's SQL reads.
import { PLAN_CLASSES, UNLIMITED_SEATS, type OnExhausted, type Pack, type Plan, type PlanClass } from "./plans.ts";
import { validatePriceBook, type PriceBook } from "./price-book.ts";
import { offersOverage, overageRateProblem } from "./exhaustion.ts";
import { DEFAULT_PLAN_CODE } from "./accounts.ts";

export interface Catalogue {
  /** Also the price book's version: a price change is a new version. */
  readonly version: string;
  readonly plans: readonly Plan[];
  readonly packs: readonly Pack[];
  readonly priceBook: PriceBook;
}

/** Every problem found, each naming its field by path (`plans[3].longestSidePixels`). */
export class CatalogueError extends Error {
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    super(`the plans file ${source} is invalid:\n  - ${problems.join("\n  - ")}`);
    this.name = "CatalogueError";
    this.problems = problems;
  }
}

const CREDIT = 1000;
/** Credits are written with at most 3 decimals: the ledger counts whole millicredits. */
const MILLICREDIT_DECIMALS = 3;
const CODE_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;
/** Bounds an edit cannot sensibly pass; each names its unit. */
const LONGEST_SIDE_PIXELS = { min: 64, max: 65_535 };
const UPLOAD_BYTES_MAX = 1024 * 1024 * 1024 * 1024;
const VIDEO_SECONDS_MAX = 24 * 60 * 60;
const TRIAL_DAYS_MAX = 365;

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

/** Reads fields of one object, recording a problem with its path for each bad one. */
class FieldReader {
  readonly #object: Json;
  readonly #path: string;
  readonly #problems: string[];
  readonly #fallback: Json;

  constructor(object: Json, path: string, problems: string[], fallback: Json = {}) {
    this.#object = object;
    this.#path = path;
    this.#problems = problems;
    this.#fallback = fallback;
  }

  #value(name: string): unknown {
    return this.#object[name] ?? this.#fallback[name];
  }

  #problem(name: string, message: string): void {
    this.#problems.push(`${this.#path}${name} ${message}`);
  }

  text(name: string, required = true): string {
    const value = this.#value(name);
    if (value === undefined && !required) return "";
    if (typeof value !== "string" || value.trim() === "") this.#problem(name, "must be a non-empty string");
    return typeof value === "string" ? value : "";
  }

  optionalText(name: string): string | null {
    const value = this.#value(name);
    if (value === undefined || value === null) return null;
    if (typeof value !== "string" || value.trim() === "") {
      this.#problem(name, "must be a non-empty string when present");
      return null;
    }
    return value;
  }

  integer(name: string, bounds: { min: number; max?: number }, unit: string, defaultValue?: number): number {
    const value = this.#value(name) ?? defaultValue;
    const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < bounds.min || value > max) {
      this.#problem(name, `must be an integer from ${bounds.min} to ${max} (${unit})`);
      return bounds.min;
    }
    return value;
  }

  /** Credits with at most 3 decimals, as millicredits. */
  credits(name: string): number {
    const value = this.#value(name);
    const millicredits = typeof value === "number" ? Math.round(value * CREDIT) : Number.NaN;
    if (typeof value !== "number" || value < 0 || !Number.isSafeInteger(millicredits) || Math.abs(millicredits - value * CREDIT) > 1e-6) {
      this.#problem(name, `must be a non-negative number of credits with at most ${MILLICREDIT_DECIMALS} decimals`);
      return 0;
    }
    return millicredits;
  }

  oneOf<const T extends string>(name: string, values: readonly T[], defaultValue?: T): T {
    const value = this.#value(name) ?? defaultValue;
    if (!values.includes(value as T)) {
      this.#problem(name, `must be one of ${values.join(", ")}`);
      return values[0]!;
    }
    return value as T;
  }

  seats(name: string): number {
    const value = this.#value(name);
    if (value === "unlimited") return UNLIMITED_SEATS;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
      this.#problem(name, 'must be a positive integer of seats or "unlimited"');
      return 1;
    }
    return value;
  }
}

/** What a plan inherits from its class unless it sets the field itself. */
const CLASS_FIELDS = ["longestSidePixels", "maxUploadBytes", "videoSecondsMax", "videoBytesMax", "videoLongestSidePixels", "priorityLane"] as const;

const PLAN_FIELDS: readonly string[] = [
  ...["code", "name", "class", "pool", "monthlyPriceCents", "creditsPerCycle", "rolloverCycles", "termMonths", "creditsValidDays", "onExhausted"],
  ...["overageRateCentsPerCredit", "overageCapCredits", "requestsPerMinute", "concurrency", "monthlyCalls", "seats", "stripePriceId", "trialCredits", "trialDays"],
  ...CLASS_FIELDS,
];
const PACK_FIELDS: readonly string[] = ["code", "name", "priceCents", "credits", "stripePriceId"];

function parseClasses(value: unknown, problems: string[]): Record<PlanClass, Json> {
  const classes = { standard: {}, pro: {} } as Record<PlanClass, Json>;
  if (!isObject(value)) {
    problems.push("classes must be an object with standard and pro");
    return classes;
  }
  for (const name of Object.keys(value)) {
    if (!(PLAN_CLASSES as readonly string[]).includes(name)) problems.push(`classes.${name} is not a plan class; known: ${PLAN_CLASSES.join(", ")}`);
  }
  for (const name of PLAN_CLASSES) {
    const fields = value[name];
    if (!isObject(fields)) {
      problems.push(`classes.${name} must be an object`);
      continue;
    }
    for (const field of Object.keys(fields)) {
      if (!(CLASS_FIELDS as readonly string[]).includes(field)) problems.push(`classes.${name}.${field} is not a class field; known: ${CLASS_FIELDS.join(", ")}`);
    }
    classes[name] = fields;
  }
  return classes;
}

function parsePlan(value: unknown, path: string, classes: Record<PlanClass, Json>, problems: string[]): Plan | undefined {
  if (!isObject(value)) {
    problems.push(`${path} must be an object`);
    return undefined;
  }
  for (const name of Object.keys(value)) {
    if (!PLAN_FIELDS.includes(name)) problems.push(`${path}.${name} is not a plan field; known: ${PLAN_FIELDS.join(", ")}`);
  }
  const planClass = new FieldReader(value, `${path}.`, problems).oneOf("class", PLAN_CLASSES);
  const field = new FieldReader(value, `${path}.`, problems, classes[planClass]);
  const code = field.text("code");
  if (code && !CODE_PATTERN.test(code)) problems.push(`${path}.code must be lower-case letters, digits and _ (at most 64), starting with a letter`);
  const plan: Plan = {
    code,
    name: field.text("name"),
    planClass,
    pool: field.oneOf("pool", ["api", "web"] as const, "api"),
    monthlyPriceCents: field.integer("monthlyPriceCents", { min: 0 }, "cents"),
    creditsPerCycleMillicredits: field.credits("creditsPerCycle"),
    rolloverCycles: field.integer("rolloverCycles", { min: 0, max: 120 }, "cycles"),
    termMonths: field.integer("termMonths", { min: 0, max: 120 }, "months", 0),
    creditsValidDays: field.integer("creditsValidDays", { min: 0, max: 3650 }, "days", 0),
    onExhausted: field.oneOf<OnExhausted>("onExhausted", ["stop", "overage"]),
    overageRateCentsPerCredit: field.integer("overageRateCentsPerCredit", { min: 0 }, "cents per credit"),
    overageCapMillicredits: field.credits("overageCapCredits"),
    requestsPerMinute: field.integer("requestsPerMinute", { min: 1, max: 2_147_483_647 }, "requests per minute"),
    concurrency: field.integer("concurrency", { min: 1, max: 2_147_483_647 }, "requests at once"),
    monthlyCalls: field.integer("monthlyCalls", { min: 1 }, "calls per month"),
    maxUploadBytes: field.integer("maxUploadBytes", { min: 1024, max: UPLOAD_BYTES_MAX }, "bytes"),
    longestSidePixels: field.integer("longestSidePixels", LONGEST_SIDE_PIXELS, "pixels"),
    priorityLane: field.oneOf("priorityLane", ["high", "normal"] as const),
    seats: field.seats("seats"),
    videoSecondsMax: field.integer("videoSecondsMax", { min: 1, max: VIDEO_SECONDS_MAX }, "seconds"),
    videoBytesMax: field.integer("videoBytesMax", { min: 1024, max: UPLOAD_BYTES_MAX }, "bytes"),
    videoLongestSidePixels: field.integer("videoLongestSidePixels", LONGEST_SIDE_PIXELS, "pixels"),
    stripePriceId: field.optionalText("stripePriceId"),
    trialMillicredits: value.trialCredits === undefined ? 0 : field.credits("trialCredits"),
    trialDays: field.integer("trialDays", { min: 0, max: TRIAL_DAYS_MAX }, "days", 0),
  };
  // Pairing is checked on values that read well; a bad one is named once, by its own problem.
  if (!problems.some((problem) => problem.startsWith(`${path}.trial`))) problems.push(...trialProblems(plan, path));
  // Overage must be consistent: a plan that continues in overage by default must offer it
  // (a rate and a cap above zero), and its rate must be above the plan's own per-credit rate.
  if (plan.onExhausted === "overage" && !offersOverage(plan)) {
    problems.push(`${path}.onExhausted is overage but the plan offers no overage (overageRateCentsPerCredit and overageCapCredits must both be above 0)`);
  }
  const rateProblem = overageRateProblem(plan);
  if (rateProblem) problems.push(`${path}.overageRateCentsPerCredit: ${rateProblem}`);
  return plan;
}

/** The sign-up trial is the free plan's (every sign-up gets it), credits and days together or neither. */
function trialProblems(plan: Plan, path: string): string[] {
  const problems: string[] = [];
  if ((plan.trialMillicredits > 0 || plan.trialDays > 0) && plan.code !== DEFAULT_PLAN_CODE) {
    problems.push(`${path}.trialCredits and trialDays belong to the free plan only (its trial is every sign-up's); remove them from plan "${plan.code}"`);
  }
  if ((plan.trialMillicredits > 0) !== (plan.trialDays > 0)) problems.push(`${path}.trialCredits and trialDays must both be above 0 (a trial), or both 0 (none)`);
  return problems;
}

function parsePack(value: unknown, path: string, problems: string[]): Pack | undefined {
  if (!isObject(value)) {
    problems.push(`${path} must be an object`);
    return undefined;
  }
  for (const name of Object.keys(value)) {
    if (!PACK_FIELDS.includes(name)) problems.push(`${path}.${name} is not a pack field; known: ${PACK_FIELDS.join(", ")}`);
  }
  const field = new FieldReader(value, `${path}.`, problems);
  const code = field.text("code");
  if (code && !CODE_PATTERN.test(code)) problems.push(`${path}.code must be lower-case letters, digits and _ (at most 64), starting with a letter`);
  const pack = { code, priceCents: field.integer("priceCents", { min: 1 }, "cents"), creditsMillicredits: field.credits("credits"), stripePriceId: field.optionalText("stripePriceId") };
  if (pack.creditsMillicredits === 0 && value.credits === 0) problems.push(`${path}.credits must be above 0`);
  return pack;
}

function parseList<T extends { code: string }>(value: unknown, name: string, problems: string[], parse: (item: unknown, path: string) => T | undefined): T[] {
  if (!Array.isArray(value) || value.length === 0) {
    problems.push(`${name} must be a non-empty list`);
    return [];
  }
  const items: T[] = [];
  const seen = new Map<string, number>();
  for (const [index, item] of value.entries()) {
    const parsed = parse(item, `${name}[${index}]`);
    if (!parsed) continue;
    const first = seen.get(parsed.code);
    if (parsed.code && first !== undefined) problems.push(`${name}[${index}].code "${parsed.code}" repeats ${name}[${first}].code`);
    seen.set(parsed.code, index);
    items.push(parsed);
  }
  return items;
}

/** The catalogue in `document` (the parsed JSON), or every problem with it, each naming its field. */
export function parseCatalogue(document: unknown): { ok: true; catalogue: Catalogue } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  if (!isObject(document)) return { ok: false, problems: ["the file must hold one JSON object"] };
  const version = new FieldReader(document, "", problems).text("version");
  const classes = parseClasses(document.classes, problems);
  const plans = parseList(document.plans, "plans", problems, (item, path) => parsePlan(item, path, classes, problems));
  if (plans.length > 0 && !plans.some((plan) => plan.code === DEFAULT_PLAN_CODE)) problems.push(`plans must include "${DEFAULT_PLAN_CODE}" (accounts created without a plan start on it)`);
  const packs = parseList(document.packs, "packs", problems, (item, path) => parsePack(item, path, problems));
  let priceBook: PriceBook = { version, operations: {} as PriceBook["operations"], extras: {} };
  if (!isObject(document.priceBook)) problems.push("priceBook must be an object");
  else {
    priceBook = { version, operations: document.priceBook.operations as PriceBook["operations"], extras: (document.priceBook.extras ?? {}) as PriceBook["extras"] };
    if (!isObject(priceBook.extras)) problems.push("priceBook.extras must be an object");
    else problems.push(...validatePriceBook(priceBook, "priceBook.").filter((problem) => problem !== "priceBook.version is empty"));
  }
  for (const name of Object.keys(document)) {
    if (!["$comment", "version", "classes", "plans", "packs", "priceBook"].includes(name)) problems.push(`${name} is not a field of the plans file`);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, catalogue: { version, plans, packs, priceBook } };
}

// The shipped plans file (deploy/plans/plans.json) against the seed products' rules (issue 11,
// ARCHITECTURE §5), and the checks an operator's edit goes through, each naming its field.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { readCatalogueFile, SHIPPED_PLANS_FILE } from "../store/catalogue.store.ts";
import { parseCatalogue, type Catalogue } from "./catalogue.ts";
import { cycleStart, hasFreeSeat, subscriptionGrant, UNLIMITED_SEATS, videoPlanRefusal, type Plan } from "./plans.ts";
import { affordableOperations, priceOf, type PriceRequest } from "./price-book.ts";

const catalogue: Catalogue = readCatalogueFile();
const shipped = (): Record<string, unknown> & { plans: Record<string, unknown>[]; packs: Record<string, unknown>[] } => JSON.parse(readFileSync(SHIPPED_PLANS_FILE, "utf8"));
const plan = (code: string): Plan => {
  const found = catalogue.plans.find((candidate) => candidate.code === code);
  assert.ok(found, `the plans file has ${code}`);
  return found;
};
const cost = (request: Partial<PriceRequest> & Pick<PriceRequest, "operation">) => {
  const outcome = priceOf(catalogue.priceBook, { pixels: 1, hd: false, videoMilliseconds: 0, ...request });
  return outcome.ok ? outcome.costMillicredits : outcome.reason;
};
const problemsOf = (edit: (document: ReturnType<typeof shipped>) => void): string[] => {
  const document = shipped();
  edit(document);
  const parsed = parseCatalogue(document);
  return parsed.ok ? [] : parsed.problems;
};
const MEBIBYTE = 1024 * 1024;
const DAY_MS = 24 * 60 * 60 * 1000;

describe("the shipped plans file: presets mirroring the seeds", () => {
  it("offers exactly the presets, by code and class", () => {
    assert.deepEqual(
      catalogue.plans.map((preset) => [preset.code, preset.planClass]),
      [
        ["free", "standard"],
        ["developer", "standard"],
        ["growth", "standard"],
        ["scale", "standard"],
        ["business", "pro"],
        ["enterprise", "pro"],
        ["web_basic", "standard"],
        ["image_250", "standard"],
        ["annual_lite", "standard"],
        ["annual_performance", "standard"],
        ["annual_scale", "standard"],
      ],
    );
  });

  it("prices the Cutout Pro API plans at $19.99, $49.99 and $149.99, each with its rate limits; business and enterprise on the priority queue", () => {
    assert.deepEqual(["developer", "growth", "scale"].map((code) => plan(code).monthlyPriceCents), [1999, 4999, 14_999]);
    for (const preset of catalogue.plans) {
      assert.ok(preset.requestsPerMinute > 0 && preset.concurrency > 0 && preset.monthlyCalls > 0, `${preset.code} has requests/minute, concurrency and monthly calls`);
      assert.equal(preset.priorityLane, preset.planClass === "pro" ? "high" : "normal", `${preset.code}'s queue follows its class`);
    }
    assert.deepEqual(["business", "enterprise"].map((code) => plan(code).priorityLane), ["high", "high"]);
  });

  it("free is the sign-up trial only: no subscription credits (the 10-credit, 7-day trial is granted at sign-up), API pool", () => {
    assert.deepEqual([plan("free").creditsPerCycleMillicredits, plan("free").pool, plan("free").monthlyPriceCents], [0, "api", 0]);
    assert.deepEqual([plan("free").trialMillicredits, plan("free").trialDays], [10_000, 7], "the trial is the free plan's, in the file");
    assert.ok(catalogue.plans.every((preset) => preset.code === "free" || (preset.trialMillicredits === 0 && preset.trialDays === 0)), "no other plan sets one");
  });

  it("refuses a bad trial: on a plan other than free, credits without days (or days without credits), out of range, naming the field", () => {
    const freeIndex = shipped().plans.findIndex((preset) => preset.code === "free");
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[1], { trialCredits: 5, trialDays: 3 })), [
      `plans[1].trialCredits and trialDays belong to the free plan only (its trial is every sign-up's); remove them from plan "developer"`,
    ]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[freeIndex], { trialDays: 0 })), [`plans[${freeIndex}].trialCredits and trialDays must both be above 0 (a trial), or both 0 (none)`]);
    assert.ok(
      problemsOf((document) => Object.assign(document.plans[freeIndex], { trialCredits: 0.0001 })).includes(`plans[${freeIndex}].trialCredits must be a non-negative number of credits with at most 3 decimals`),
    );
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[freeIndex], { trialDays: 400 })), [`plans[${freeIndex}].trialDays must be an integer from 0 to 365 (days)`]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[freeIndex], { trialCredits: 0, trialDays: 0 })), [], "no trial at all is valid");
  });

  it("web_basic sells 1,000 web credits for $30, valid 90 days", () => {
    const web = plan("web_basic");
    assert.deepEqual([web.monthlyPriceCents, web.creditsPerCycleMillicredits, web.pool, web.creditsValidDays], [3000, 1_000_000, "web", 90]);
    const anchor = new Date("2026-01-15T00:00:00.000Z");
    const grant = subscriptionGrant(web, anchor, 0)!;
    assert.equal(grant.expiresAt.getTime() - grant.effectiveAt.getTime(), 90 * DAY_MS);
  });

  it("image_250 is $250 for 4,570 credits ($0.0547 each) with overage at $0.10 a credit", () => {
    const image = plan("image_250");
    assert.deepEqual([image.monthlyPriceCents, image.creditsPerCycleMillicredits, image.onExhausted, image.overageRateCentsPerCredit], [25_000, 4_570_000, "overage", 10]);
    assert.ok(image.overageRateCentsPerCredit > image.monthlyPriceCents / (image.creditsPerCycleMillicredits / 1000), "overage costs more per credit than the plan");
  });

  it("annual plans grant 200, 1,100 and 3,300 credits a month, each month's valid to the end of the 12-month term", () => {
    assert.deepEqual(["annual_lite", "annual_performance", "annual_scale"].map((code) => [plan(code).creditsPerCycleMillicredits, plan(code).termMonths]), [
      [200_000, 12],
      [1_100_000, 12],
      [3_300_000, 12],
    ]);
    const anchor = new Date("2026-03-31T00:00:00.000Z");
    const termEnd = cycleStart(anchor, 12).toISOString();
    for (const month of [0, 5, 11]) assert.equal(subscriptionGrant(plan("annual_lite"), anchor, month)!.expiresAt.toISOString(), termEnd, `month ${month + 1}`);
    assert.equal(subscriptionGrant(plan("annual_lite"), anchor, 12)!.expiresAt.toISOString(), cycleStart(anchor, 24).toISOString(), "the next term's credits last to its end");
  });

  it("rolls subscription credits over one cycle on the Cutout Pro plans and never on the others", () => {
    for (const preset of catalogue.plans) {
      const cutoutPro = ["developer", "growth", "scale", "business", "enterprise"].includes(preset.code);
      assert.equal(preset.rolloverCycles, cutoutPro ? 1 : 0, preset.code);
    }
    const anchor = new Date("2026-05-10T00:00:00.000Z");
    assert.equal(subscriptionGrant(plan("developer"), anchor, 0)!.expiresAt.toISOString(), "2026-07-10T00:00:00.000Z");
    assert.equal(subscriptionGrant(plan("image_250"), anchor, 0)!.expiresAt.toISOString(), "2026-06-10T00:00:00.000Z");
  });

  it("sells top-ups $100 = 555, $250 = 1,388, $500 = 2,777, $1,000 = 5,555 and $2,000 = 11,111 credits", () => {
    assert.deepEqual(catalogue.packs.map((pack) => [pack.priceCents / 100, pack.creditsMillicredits / 1000]), [
      [100, 555],
      [250, 1388],
      [500, 2777],
      [1000, 5555],
      [2000, 11_111],
    ]);
  });
});

describe("the shipped plans file: plan limits", () => {
  it("longest side 4096 px on standard-class plans and 8192 px on pro-class plans", () => {
    for (const preset of catalogue.plans) assert.equal(preset.longestSidePixels, preset.planClass === "pro" ? 8192 : 4096, preset.code);
  });

  it("25 MiB per image on every plan", () => {
    for (const preset of catalogue.plans) assert.equal(preset.maxUploadBytes, 25 * MEBIBYTE, preset.code);
  });

  it("enterprise may set its own image size limit; other plans inherit their class's", () => {
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[5]!, { maxUploadBytes: 100 * MEBIBYTE })), []);
    const edited = shipped();
    Object.assign(edited.plans[5]!, { maxUploadBytes: 100 * MEBIBYTE });
    const parsed = parseCatalogue(edited);
    assert.ok(parsed.ok);
    assert.equal(parsed.catalogue.plans[5]!.maxUploadBytes, 100 * MEBIBYTE);
  });

  it("video: 60 s on standard-class, 300 s on pro-class, at most 1080p; 200 MiB standard, 1 GiB pro", () => {
    for (const preset of catalogue.plans) {
      const pro = preset.planClass === "pro";
      assert.deepEqual([preset.videoSecondsMax, preset.videoBytesMax, preset.videoLongestSidePixels], [pro ? 300 : 60, pro ? 1024 * MEBIBYTE : 200 * MEBIBYTE, 1920], preset.code);
    }
    assert.equal(videoPlanRefusal(plan("scale"), 60_000, 1920 * 1080), undefined);
    assert.equal(videoPlanRefusal(plan("scale"), 60_001, 1920 * 1080)?.reason, "video_too_long");
    assert.match(videoPlanRefusal(plan("scale"), 60_001, 1920 * 1080)?.message ?? "", /Scale plan's limit of 60 s \(videoSecondsMax\)/);
    assert.equal(videoPlanRefusal(plan("business"), 300_000, 1920 * 1080), undefined);
    assert.equal(videoPlanRefusal(plan("business"), 300_001, 1920 * 1080)?.reason, "video_too_long");
    assert.equal(videoPlanRefusal(plan("enterprise"), 1000, 2560 * 1440)?.reason, "resolution_too_large");
  });

  it("seats: business 3, enterprise unlimited, every other plan 1", () => {
    for (const preset of catalogue.plans) {
      const seats = preset.code === "business" ? 3 : preset.code === "enterprise" ? UNLIMITED_SEATS : 1;
      assert.equal(preset.seats, seats, preset.code);
    }
    assert.equal(hasFreeSeat(plan("business"), 2), true);
    assert.equal(hasFreeSeat(plan("business"), 3), false);
    assert.equal(hasFreeSeat(plan("enterprise"), 10_000), true);
    assert.equal(hasFreeSeat(plan("developer"), 1), false);
  });
});

describe("the shipped price book", () => {
  it("standard background removal: 1 credit for a typical photo, resolution-based below that, never under 0.5", () => {
    assert.equal(cost({ operation: "remove_background", pixels: 4032 * 3024 }), 1000, "a 12 MP phone photo");
    assert.equal(cost({ operation: "remove_background", pixels: 4096 * 3072 }), 1000, "at the standard-class side");
    assert.equal(cost({ operation: "remove_background", pixels: 8192 * 8192 }), 1000, "at the pro-class side");
    assert.equal(cost({ operation: "remove_background", pixels: 1_000_000 }), 750);
    assert.equal(cost({ operation: "remove_background", pixels: 250_000 }), 500);
    assert.equal(cost({ operation: "remove_background", pixels: 1 }), 500);
    for (const tier of catalogue.priceBook.operations.remove_background.tiers) assert.ok(tier.costMillicredits >= 500, "never under 0.5 credits");
  });

  it("HD is twice the standard price, at every size", () => {
    for (const pixels of [1, 250_001, 4032 * 3024]) {
      assert.equal(cost({ operation: "remove_background", pixels, hd: true }), 2 * (cost({ operation: "remove_background", pixels }) as number), `${pixels} pixels`);
    }
  });

  it("smart crop 1.3 credits and upscaling 2 credits an image", () => {
    assert.deepEqual([cost({ operation: "smart_crop", pixels: 64 * 64 }), cost({ operation: "smart_crop", pixels: 4032 * 3024 })], [1300, 1300]);
    assert.deepEqual([cost({ operation: "upscale", pixels: 64 * 64 }), cost({ operation: "upscale", pixels: 4032 * 3024 })], [2000, 2000]);
  });

  it("video: 3 credits per started second up to 720p, 4 up to 1080p, 5 at quality best; nothing above 1080p", () => {
    const video = (pixels: number, videoMilliseconds: number, quality = "") => cost({ operation: "video_remove_background", pixels, videoMilliseconds, quality });
    assert.equal(video(1280 * 720, 1000), 3000);
    assert.equal(video(1280 * 720, 1001), 6000, "a started second is a second");
    assert.equal(video(1920 * 1080, 10_000), 40_000);
    assert.equal(video(640 * 360, 10_000, "best"), 50_000);
    assert.equal(video(1920 * 1080, 10_000, "best"), 50_000);
    assert.equal(video(1920 * 1080, 10_000, "balanced"), 40_000);
    assert.equal(video(2560 * 1440, 1000), "resolution_too_large");
    assert.equal(video(1280 * 720, 300_001), "video_too_long", "no plan takes more than 5 minutes");
  });

  it("the balance answers how many more of each operation, smart crop, upscale and video seconds included", () => {
    const rows = affordableOperations(catalogue.priceBook, 12_000);
    const count = (description: string) => rows.find((row) => row.description === description)?.count;
    assert.deepEqual([...new Set(rows.map((row) => row.operation))], ["remove_background", "smart_crop", "upscale", "video_remove_background"]);
    assert.equal(count("background removal, image, up to 0.25 MP"), 24);
    assert.equal(count("background removal, image, up to 67.11 MP"), 12);
    assert.equal(count("smart crop, image, up to 67.11 MP"), 9);
    assert.equal(count("upscaling, image, up to 67.11 MP"), 6);
    assert.equal(count("background removal, video per started second, up to 0.92 MP, 1 s"), 4);
    assert.equal(count("background removal, video per started second, up to 2.07 MP, 1 s"), 3);
    assert.equal(count("background removal, video per started second, quality best, 1 s"), 2);
  });
});

describe("checking an edited plans file", () => {
  it("accepts the shipped file", () => {
    assert.deepEqual(problemsOf(() => {}), []);
  });

  it("names the bad field by its path", () => {
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[3]!, { longestSidePixels: 10 })), ["plans[3].longestSidePixels must be an integer from 64 to 65535 (pixels)"]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[0]!, { creditsPerCycle: 1.0005 })), ["plans[0].creditsPerCycle must be a non-negative number of credits with at most 3 decimals"]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[1]!, { class: "gold" })), ["plans[1].class must be one of standard, pro"]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[4]!, { seats: 0 })), ['plans[4].seats must be a positive integer of seats or "unlimited"']);
    const typo = problemsOf((document) => Object.assign(document.plans[2]!, { requestPerMinute: 5 }));
    assert.equal(typo.length, 1);
    assert.match(typo[0]!, /^plans\[2\]\.requestPerMinute is not a plan field; known: .*requestsPerMinute/);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[2]!, { code: "developer" })), ['plans[2].code "developer" repeats plans[1].code']);
    assert.deepEqual(problemsOf((document) => Object.assign(document.packs[1]!, { priceCents: -5 })), ["packs[1].priceCents must be an integer from 1 to 9007199254740991 (cents)"]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.packs[0]!, { stripePriceId: 42 })), ["packs[0].stripePriceId must be a non-empty string when present"]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[0]!, { stripePriceId: "price_1Abc" })), []);
    assert.deepEqual(
      problemsOf((document) => ((document.priceBook as { operations: { remove_background: { tiers: { costMillicredits: number }[] } } }).operations.remove_background.tiers[1]!.costMillicredits = 0)),
      ["priceBook.operations.remove_background.tiers[1].costMillicredits must be a positive integer"],
    );
    assert.deepEqual(problemsOf((document) => delete document.version), ["version must be a non-empty string"]);
    assert.deepEqual(problemsOf((document) => Object.assign(document, { plan: [] })), ["plan is not a field of the plans file"]);
  });

  it("reports every problem at once", () => {
    const problems = problemsOf((document) => {
      Object.assign(document.plans[3]!, { longestSidePixels: "big" });
      Object.assign(document.plans[7]!, { onExhausted: "maybe" });
    });
    assert.deepEqual(problems, ["plans[3].longestSidePixels must be an integer from 64 to 65535 (pixels)", "plans[7].onExhausted must be one of stop, overage"]);
  });

  it("refuses inconsistent overage: continuing in overage without an offer, or overage no dearer than the plan's own rate", () => {
    // plans[1] is developer ($19.99 for 200 credits, 9.995 cents a credit, no overage cap); plans[4] business offers overage.
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[1]!, { onExhausted: "overage" })), [
      "plans[1].onExhausted is overage but the plan offers no overage (overageRateCentsPerCredit and overageCapCredits must both be above 0)",
    ]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[4]!, { overageRateCentsPerCredit: 0 })), [
      "plans[4].onExhausted is overage but the plan offers no overage (overageRateCentsPerCredit and overageCapCredits must both be above 0)",
    ]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[4]!, { overageRateCentsPerCredit: 5 })), [
      "plans[4].overageRateCentsPerCredit: business: overage rate 5 cents a credit is not above the plan's 7.14 cents a credit",
    ]);
    assert.deepEqual(problemsOf((document) => Object.assign(document.plans[1]!, { onExhausted: "overage", overageCapCredits: 100 })), []);
  });

  it("a plan inherits its class's limits unless it sets its own", () => {
    const parsed = parseCatalogue(shipped());
    assert.ok(parsed.ok);
    const edited = shipped();
    (edited.classes as { pro: { longestSidePixels: number } }).pro.longestSidePixels = 6000;
    const reparsed = parseCatalogue(edited);
    assert.ok(reparsed.ok);
    assert.deepEqual(reparsed.catalogue.plans.filter((preset) => preset.planClass === "pro").map((preset) => preset.longestSidePixels), [6000, 6000]);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { affordableOperations, DEFAULT_PRICE_BOOK, isPriceBookFresh, PRICE_BOOK_CACHE_MS, priceOf, referenceOperations, SMART_CROP_PRICE, validatePriceBook } from "./price-book.ts";

const cost = (request: Parameters<typeof priceOf>[1]) => {
  const outcome = priceOf(DEFAULT_PRICE_BOOK, request);
  return outcome.ok ? outcome.costMillicredits : outcome.reason;
};

describe("priceOf", () => {
  it("prices images by resolution tier, inclusive at the boundary", () => {
    assert.equal(cost({ operation: "remove_background", pixels: 1_000_000, hd: false, videoMilliseconds: 0 }), 500);
    assert.equal(cost({ operation: "remove_background", pixels: 1_000_001, hd: false, videoMilliseconds: 0 }), 800);
    assert.equal(cost({ operation: "remove_background", pixels: 12_000_000, hd: false, videoMilliseconds: 0 }), 1100);
    assert.equal(cost({ operation: "remove_background", pixels: 51_000_000, hd: false, videoMilliseconds: 0 }), "resolution_too_large");
  });

  it("applies the HD multiplier in integers and adds extras after it", () => {
    assert.equal(cost({ operation: "remove_background", pixels: 12_000_000, hd: true, videoMilliseconds: 0 }), 2200);
    assert.equal(cost({ operation: "remove_background", pixels: 200_000, hd: true, videoMilliseconds: 0, extras: ["shadow"] }), 700);
    assert.equal(cost({ operation: "remove_background", pixels: 200_000, hd: false, videoMilliseconds: 0, extras: ["glitter"] }), "unknown_extra");
  });

  it("bills video per started second", () => {
    assert.equal(cost({ operation: "video_remove_background", pixels: 2_073_600, hd: false, videoMilliseconds: 1 }), 2000);
    assert.equal(cost({ operation: "video_remove_background", pixels: 2_073_600, hd: false, videoMilliseconds: 10_001 }), 22_000);
    assert.equal(cost({ operation: "video_remove_background", pixels: 2_073_600, hd: false, videoMilliseconds: 0 }), "invalid_argument");
    assert.equal(cost({ operation: "video_remove_background", pixels: 2_073_600, hd: false, videoMilliseconds: 600_001 }), "video_too_long");
  });

  it("prices smart crop flat at 1.3 credits an image, doubled for HD like matting", () => {
    for (const pixels of [1, 64 * 64, 1_000_001, 12_000_000, 50_000_000]) {
      assert.equal(cost({ operation: "smart_crop", pixels, hd: false, videoMilliseconds: 0 }), 1300, `${pixels} pixels`);
      assert.equal(cost({ operation: "smart_crop", pixels, hd: true, videoMilliseconds: 0 }), 2600, `${pixels} pixels, HD`);
    }
    const matting = DEFAULT_PRICE_BOOK.operations.remove_background;
    assert.equal(DEFAULT_PRICE_BOOK.operations.smart_crop.hdMultiplierPermille, matting.hdMultiplierPermille, "the same HD rule as matting");
    assert.equal(DEFAULT_PRICE_BOOK.operations.smart_crop.tiers.at(-1)?.maxPixels, matting.tiers.at(-1)?.maxPixels, "the same largest size as matting");
    assert.equal(cost({ operation: "smart_crop", pixels: 50_000_001, hd: false, videoMilliseconds: 0 }), "resolution_too_large");
  });

  it("ships a valid default book with a reference row per tier, in a fixed operation order", () => {
    assert.deepEqual(validatePriceBook(DEFAULT_PRICE_BOOK), []);
    const rows = referenceOperations(DEFAULT_PRICE_BOOK);
    assert.equal(rows.length, 10);
    assert.deepEqual([...new Set(rows.map((row) => row.operation))], ["remove_background", "smart_crop", "video_remove_background"]);
    assert.deepEqual(rows.find((row) => row.operation === "smart_crop"), { operation: "smart_crop", description: "smart crop, image, up to 50 MP", costMillicredits: 1300 });
    // A stored book comes back with jsonb's key order (shortest first): the rows keep theirs.
    const reordered = { ...DEFAULT_PRICE_BOOK, operations: { video_remove_background: DEFAULT_PRICE_BOOK.operations.video_remove_background, smart_crop: SMART_CROP_PRICE, remove_background: DEFAULT_PRICE_BOOK.operations.remove_background } };
    assert.deepEqual(referenceOperations(reordered), rows);
    const { smart_crop: _, ...withoutSmartCrop } = DEFAULT_PRICE_BOOK.operations;
    assert.deepEqual(validatePriceBook({ ...DEFAULT_PRICE_BOOK, operations: withoutSmartCrop as typeof DEFAULT_PRICE_BOOK.operations }), ["operations.smart_crop is missing"]);
    const broken = { ...DEFAULT_PRICE_BOOK, operations: { ...DEFAULT_PRICE_BOOK.operations, remove_background: { ...DEFAULT_PRICE_BOOK.operations.remove_background, hdMultiplierPermille: 1.5 } } };
    assert.equal(validatePriceBook(broken).length, 1);
  });
});

describe("affordableOperations", () => {
  it("counts whole operations per reference tier", () => {
    const rows = affordableOperations(DEFAULT_PRICE_BOOK, 2_600);
    assert.equal(rows.length, referenceOperations(DEFAULT_PRICE_BOOK).length);
    assert.deepEqual(rows.slice(0, 3).map((row) => [row.operation, row.count]), [["remove_background", 10], ["remove_background", 5], ["remove_background", 3]]);
    assert.ok(rows.every((row) => Number.isSafeInteger(row.count) && row.count >= 0));
    assert.ok(affordableOperations(DEFAULT_PRICE_BOOK, 0).every((row) => row.count === 0));
  });
});

describe("price book cache", () => {
  const loadedAt = new Date("2025-01-01T00:00:00.000Z");
  const after = (ms: number) => new Date(loadedAt.getTime() + ms);

  it("is fresh for PRICE_BOOK_CACHE_MS after loading by the given clock", () => {
    assert.equal(isPriceBookFresh(loadedAt, loadedAt), true);
    assert.equal(isPriceBookFresh(loadedAt, after(PRICE_BOOK_CACHE_MS - 1)), true);
    assert.equal(isPriceBookFresh(loadedAt, after(PRICE_BOOK_CACHE_MS)), false);
  });

  it("is stale when the clock stepped back", () => {
    assert.equal(isPriceBookFresh(loadedAt, after(-1)), false);
  });
});

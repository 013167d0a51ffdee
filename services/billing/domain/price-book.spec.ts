import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_PRICE_BOOK, priceOf, referenceOperations, validatePriceBook } from "./price-book.ts";

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

  it("ships a valid default book with a reference row per tier", () => {
    assert.deepEqual(validatePriceBook(DEFAULT_PRICE_BOOK), []);
    assert.equal(referenceOperations(DEFAULT_PRICE_BOOK).length, 9);
    const broken = { ...DEFAULT_PRICE_BOOK, operations: { ...DEFAULT_PRICE_BOOK.operations, remove_background: { ...DEFAULT_PRICE_BOOK.operations.remove_background, hdMultiplierPermille: 1.5 } } };
    assert.equal(validatePriceBook(broken).length, 1);
  });
});

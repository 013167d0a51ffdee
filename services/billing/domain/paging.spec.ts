import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodePageToken, ledgerCursor, PAGE_SIZE_DEFAULT, pageSize, usageCursor } from "./paging.ts";

const BAD = { ok: false, reason: "invalid_argument", message: "bad page_token" };

describe("pageSize", () => {
  it("uses the default for 0 and keeps within 1 and the maximum", () => {
    assert.equal(pageSize(0, 500), PAGE_SIZE_DEFAULT);
    assert.equal(pageSize(-3, 500), 1);
    assert.equal(pageSize(7, 500), 7);
    assert.equal(pageSize(10_000, 500), 500);
    assert.equal(pageSize(0, 20), 20);
  });
});

describe("page tokens", () => {
  it("round-trip the ledger's last id", () => {
    assert.deepEqual(ledgerCursor(""), { ok: true, beforeId: undefined });
    assert.deepEqual(ledgerCursor(encodePageToken([42])), { ok: true, beforeId: 42 });
  });

  it("round-trip usage's last (created_at, id)", () => {
    const createdAt = new Date("2025-02-03T04:05:06.789Z");
    assert.deepEqual(usageCursor(""), { ok: true, before: undefined });
    assert.deepEqual(usageCursor(encodePageToken([createdAt.toISOString(), "hold-9"])), { ok: true, before: { createdAt, id: "hold-9" } });
  });

  it("refuses tokens that are not ours", () => {
    for (const token of ["%%%", Buffer.from("not json").toString("base64url"), encodePageToken(["42"]), Buffer.from('{"id":1}').toString("base64url")]) {
      assert.deepEqual(ledgerCursor(token), BAD, token);
    }
    for (const token of ["%%%", encodePageToken(["2025-01-01T00:00:00.000Z"]), encodePageToken([1, 2, 3])]) {
      assert.deepEqual(usageCursor(token), BAD, token);
    }
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { creditsNumber, formatCredits, parseCredits, parseCreditsValue } from "./credits.ts";

const millicreditsOf = (text: string) => {
  const parsed = parseCredits(text);
  assert.ok(parsed.ok, `expected ${text} to parse`);
  return parsed.millicredits;
};

const problemOf = (value: unknown) => {
  const parsed = parseCreditsValue(value);
  assert.ok(!parsed.ok, `expected ${JSON.stringify(value)} to be refused`);
  return parsed.problem;
};

describe("decimal credits", () => {
  it("reads decimals exactly into millicredits", () => {
    assert.equal(millicreditsOf("1.3"), 1300n);
    assert.equal(millicreditsOf("0.001"), 1n);
    assert.equal(millicreditsOf("10"), 10_000n);
    assert.equal(millicreditsOf("0"), 0n);
    assert.equal(millicreditsOf("007.50"), 7500n);
    assert.equal(millicreditsOf("999999999999.999"), 999_999_999_999_999n);
  });

  it("reads JSON numbers by their shortest decimal form, never by float arithmetic", () => {
    assert.deepEqual(parseCreditsValue(1.3), { ok: true, millicredits: 1300n });
    assert.deepEqual(parseCreditsValue(0.3), { ok: true, millicredits: 300n });
    assert.deepEqual(parseCreditsValue(2.675), { ok: true, millicredits: 2675n }, "2.675 is 2.67499… as a double");
    assert.deepEqual(parseCreditsValue("1.3"), { ok: true, millicredits: 1300n });
  });

  it("refuses more than 3 decimals, signs, exponents and non-numbers, naming the problem", () => {
    assert.match(problemOf("1.0001"), /4 decimals; credits have at most 3/);
    assert.match(problemOf(0.0001), /is not a decimal number|decimals/);
    assert.match(problemOf("-1"), /not a decimal number of credits/);
    assert.match(problemOf("1e3"), /not a decimal number of credits/);
    assert.match(problemOf(1e21), /not a decimal number of credits/);
    assert.match(problemOf(" 1"), /not a decimal number of credits/);
    assert.match(problemOf("1."), /not a decimal number of credits/);
    assert.match(problemOf(""), /not a decimal number of credits/);
    assert.match(problemOf(null), /not a decimal number of credits/);
    assert.match(problemOf(Number.NaN), /not a decimal number of credits/);
    assert.match(problemOf(true), /not a decimal number of credits/);
    assert.match(problemOf("1000000000000"), /more than 12 digits before the point/);
  });

  it("formats millicredits as the exact decimal and back", () => {
    assert.equal(formatCredits(1300n), "1.3");
    assert.equal(formatCredits(250), "0.25");
    assert.equal(formatCredits(-1001n), "-1.001");
    assert.equal(formatCredits(0n), "0");
    assert.equal(creditsNumber(1300n), 1.3);
    assert.equal(JSON.stringify({ credits: creditsNumber(60_001n) }), '{"credits":60.001}');
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 999_999_999_999_999n }), (millicredits) => {
        assert.equal(millicreditsOf(formatCredits(millicredits)), millicredits);
        assert.deepEqual(parseCreditsValue(creditsNumber(millicredits)), { ok: true, millicredits }, "a JSON number round-trips");
      }),
    );
  });
});

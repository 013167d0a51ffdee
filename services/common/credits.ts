// Credits at the edge (admin JSON, the CLI): decimal numbers of credits, converted exactly to and
// from the ledger's integer millicredits (1 credit = 1000 millicredits). Never through float
// arithmetic: "1.3" is 1300 millicredits, and 0.1 + 0.2 never happens.

export const MILLICREDITS_PER_CREDIT = 1000n;
/** Decimals a credit amount may have: millicredits are the smallest unit. */
export const CREDIT_DECIMALS_MAX = 3;
/** Digits before the point: a trillion credits is far past any ledger limit, and stays exact as a JSON number. */
export const CREDIT_INTEGER_DIGITS_MAX = 12;

export type CreditsParse = { ok: true; millicredits: bigint } | { ok: false; problem: string };

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/** "1.3" -> 1300n. Only plain non-negative decimals: no sign, exponent, spaces or more than 3 decimals. */
export function parseCredits(text: string): CreditsParse {
  const match = DECIMAL.exec(text);
  if (!match) return { ok: false, problem: `${JSON.stringify(text)} is not a decimal number of credits (e.g. 10 or 1.3)` };
  const [, whole = "", fraction = ""] = match;
  if (fraction.length > CREDIT_DECIMALS_MAX) {
    return { ok: false, problem: `${text} has ${fraction.length} decimals; credits have at most ${CREDIT_DECIMALS_MAX} (1 millicredit = 0.001)` };
  }
  if (whole.replace(/^0+(?=\d)/, "").length > CREDIT_INTEGER_DIGITS_MAX) {
    return { ok: false, problem: `${text} credits is more than ${CREDIT_INTEGER_DIGITS_MAX} digits before the point` };
  }
  return { ok: true, millicredits: BigInt(whole) * MILLICREDITS_PER_CREDIT + BigInt(fraction.padEnd(CREDIT_DECIMALS_MAX, "0")) };
}

/**
 * A JSON value as credits: a decimal string, or a number. A number is read by its shortest
 * decimal form (what JSON.stringify writes, so `1.3` is "1.3"), which is exact for every amount
 * within CREDIT_INTEGER_DIGITS_MAX digits and 3 decimals.
 */
export function parseCreditsValue(value: unknown): CreditsParse {
  if (typeof value === "string") return parseCredits(value);
  if (typeof value === "number" && Number.isFinite(value)) return parseCredits(String(value));
  return { ok: false, problem: `${JSON.stringify(value) ?? String(value)} is not a decimal number of credits (e.g. 10 or 1.3)` };
}

/** 1300n -> "1.3": the exact decimal, trailing zeros dropped. */
export function formatCredits(millicredits: bigint | number): string {
  const amount = BigInt(millicredits);
  const sign = amount < 0n ? "-" : "";
  const absolute = amount < 0n ? -amount : amount;
  const fraction = (absolute % MILLICREDITS_PER_CREDIT).toString().padStart(CREDIT_DECIMALS_MAX, "0").replace(/0+$/, "");
  return `${sign}${absolute / MILLICREDITS_PER_CREDIT}${fraction ? `.${fraction}` : ""}`;
}

/** 1300n -> 1.3 as a JSON number: the double whose shortest form is the exact decimal. */
export function creditsNumber(millicredits: bigint | number): number {
  const amount = BigInt(millicredits);
  // Past 2^53 millicredits a double no longer holds every amount: a crash, not a wrong figure.
  if ((amount < 0n ? -amount : amount) > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`credits ${amount} mc exceed what JSON numbers hold exactly`);
  return Number(formatCredits(amount));
}

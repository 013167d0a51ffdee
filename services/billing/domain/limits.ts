// What the ledger accepts at its edge: lengths, amounts and lifetimes, each with a named limit.

/** Limits, each with its unit and default. */
export interface LedgerLimits {
  /** Hold lifetime when the caller sends 0. @default 900 s */
  holdTtlSecondsDefault: number;
  /** Longest hold a caller may ask for. @default 86_400 s */
  holdTtlSecondsMax: number;
  /** Largest single reserve or grant. @default 100_000_000 mc (100,000 credits) */
  amountMillicreditsMax: number;
  /** Idempotency keys, descriptions and ids longer than this are refused. @default 200 characters */
  textLengthMax: number;
  /** Page size cap for listings. @default 500 */
  pageSizeMax: number;
}

export const DEFAULT_LEDGER_LIMITS: LedgerLimits = {
  holdTtlSecondsDefault: 900,
  holdTtlSecondsMax: 86_400,
  amountMillicreditsMax: 100_000_000,
  textLengthMax: 200,
  pageSizeMax: 500,
};

/** Why a text field is refused (missing when required, or too long), or undefined when it is fine. */
export function textProblem(limits: LedgerLimits, name: string, value: string | undefined, required: boolean): string | undefined {
  if (required && !value) return `${name} is required`;
  if (value && value.length > limits.textLengthMax) return `${name} is longer than ${limits.textLengthMax} characters`;
  return undefined;
}

/** Why an amount is refused (not a positive safe integer, or over the limit), or undefined. */
export function amountProblem(limits: LedgerLimits, amountMillicredits: number): string | undefined {
  if (!Number.isSafeInteger(amountMillicredits) || amountMillicredits <= 0) return "amount must be a positive integer of millicredits";
  if (amountMillicredits > limits.amountMillicreditsMax) return `amount exceeds the limit of ${limits.amountMillicreditsMax} millicredits`;
  return undefined;
}

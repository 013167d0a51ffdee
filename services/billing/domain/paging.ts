// Listings page by an opaque token: the sort key of the last row sent, so a page never skips
// or repeats rows that arrived meanwhile (unlike an offset).
import { fail, type Outcome } from "./outcomes.ts";

/** Rows per page when the caller sends 0. */
export const PAGE_SIZE_DEFAULT = 50;

/** The page size to use: the default for 0, at least 1, at most `pageSizeMax`. */
export function pageSize(requested: number, pageSizeMax: number): number {
  return Math.min(Math.max(requested || PAGE_SIZE_DEFAULT, 1), pageSizeMax);
}

export function encodePageToken(parts: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts)).toString("base64url");
}

function decodePageToken(token: string): (string | number)[] | undefined {
  if (!token) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString());
    return Array.isArray(parsed) ? (parsed as (string | number)[]) : undefined;
  } catch {
    return undefined;
  }
}

const BAD_TOKEN = "bad page_token";

/** Ledger entries page newest first by id: the token holds the last id sent. */
export function ledgerCursor(token: string): Outcome<{ beforeId: number | undefined }> {
  const parts = decodePageToken(token);
  if (!token) return { ok: true, beforeId: undefined };
  const [beforeId] = parts ?? [];
  if (typeof beforeId !== "number") return fail("invalid_argument", BAD_TOKEN);
  return { ok: true, beforeId };
}

/** Usage records page newest first by (created_at, id): the token holds both of the last record sent. */
export function usageCursor(token: string): Outcome<{ before: { createdAt: Date; id: string } | undefined }> {
  const parts = decodePageToken(token);
  if (!token) return { ok: true, before: undefined };
  if (!parts || parts.length !== 2) return fail("invalid_argument", BAD_TOKEN);
  const [createdAt, id] = parts as [string, string];
  return { ok: true, before: { createdAt: new Date(createdAt), id } };
}

/** Accounts page by account id, ascending: the token holds the last id sent. */
export function accountCursor(token: string): Outcome<{ afterAccountId: string | undefined }> {
  const parts = decodePageToken(token);
  if (!token) return { ok: true, afterAccountId: undefined };
  const [afterAccountId] = parts ?? [];
  if (typeof afterAccountId !== "string") return fail("invalid_argument", BAD_TOKEN);
  return { ok: true, afterAccountId };
}

// The admin API's token check: `Authorization: Bearer <token>`, compared in constant time. Both
// sides are hashed first, so neither the comparison's time nor an early length check tells a
// caller how much of a guess was right, or how long the token is.
import { createHash, timingSafeEqual } from "node:crypto";

/** Shortest admin token accepted, in characters: 32 hex characters are 128 bits. */
export const ADMIN_TOKEN_LENGTH_MIN = 32;

export type AdminTokenCheck = { ok: true } | { ok: false; reason: "missing_admin_token" | "invalid_admin_token" };

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

/** Whether `authorization` (the header's value, or null) carries `expected` as a bearer token. */
export function checkAdminToken(expected: string, authorization: string | null | undefined): AdminTokenCheck {
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
  if (!presented) return { ok: false, reason: "missing_admin_token" };
  return timingSafeEqual(digest(presented), digest(expected)) ? { ok: true } : { ok: false, reason: "invalid_admin_token" };
}

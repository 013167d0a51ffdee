import { Code } from "@connectrpc/connect";
import { reasonError } from "../common/errors.ts";
import type { ApiKeyOwner, ApiKeyStore } from "./store/api-key.store.ts";

/** The API key from `X-Api-Key` (remove.bg's header) or `Authorization: Bearer <key>`. */
export function apiKeyOf(headers: Headers): string | undefined {
  const direct = headers.get("x-api-key");
  if (direct) return direct.trim();
  const authorization = headers.get("authorization");
  const match = authorization?.match(/^Bearer\s+(\S+)$/i);
  return match?.[1];
}

export async function authenticate(store: ApiKeyStore, headers: Headers): Promise<ApiKeyOwner> {
  const key = apiKeyOf(headers);
  if (!key) {
    throw reasonError(Code.Unauthenticated, "missing_api_key", "send your API key in the X-Api-Key header (or Authorization: Bearer)");
  }
  const owner = await store.find(key);
  if (!owner) throw reasonError(Code.Unauthenticated, "invalid_api_key", "the API key is unknown or revoked");
  return owner;
}

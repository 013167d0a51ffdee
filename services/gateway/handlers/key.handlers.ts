import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { BillingService } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { ApiKeySchema, type ApiKey, type KeyService } from "../../common/gen/cutline/gateway/v1/key_service_pb.ts";
import { callerOf as callerOfKey, requireRightsOver } from "../caller-roles.ts";
import type { ApiKeyStore, ApiKeyView } from "../store/api-key.store.ts";

/** Longest key name, in characters. */
export const KEY_NAME_LENGTH_MAX = 100;
/** Keys an account may have that are not revoked; also the most ListKeys returns. */
export const ACTIVE_KEYS_PER_ACCOUNT_MAX = 100;

export function apiKeyMessage(key: ApiKeyView): ApiKey {
  return create(ApiKeySchema, {
    keyId: key.keyId,
    name: key.name,
    memberId: key.memberId ?? "",
    keyPrefix: key.keyPrefix,
    createdAt: timestampFromDate(key.createdAt),
    lastUsedAt: key.lastUsedAt ? timestampFromDate(key.lastUsedAt) : undefined,
    revokedAt: key.revokedAt ? timestampFromDate(key.revokedAt) : undefined,
  });
}

export function keyNotFound(keyId: string): ConnectError {
  return reasonError(Code.NotFound, "key_not_found", `no API key ${keyId}`);
}

/**
 * Creates a key for the account (for `memberId`, or account-wide), within the name and count
 * limits; shared by KeyService and the admin API. The key is in the answer once.
 */
export async function createKeyWithinLimits(apiKeys: ApiKeyStore, request: { accountId: string; name: string; memberId?: string }): Promise<{ key: string; view: ApiKeyView }> {
  if (request.name.length > KEY_NAME_LENGTH_MAX) {
    throw reasonError(Code.InvalidArgument, "invalid_argument", `the key name is ${request.name.length} characters; at most ${KEY_NAME_LENGTH_MAX} (KEY_NAME_LENGTH_MAX)`);
  }
  const active = await apiKeys.countActive(request.accountId);
  if (active >= ACTIVE_KEYS_PER_ACCOUNT_MAX) {
    throw reasonError(
      Code.FailedPrecondition,
      "key_limit_reached",
      `account ${request.accountId} has ${active} keys; at most ${ACTIVE_KEYS_PER_ACCOUNT_MAX} (ACTIVE_KEYS_PER_ACCOUNT_MAX): revoke one first`,
    );
  }
  const { key, keyId } = await apiKeys.create(request.accountId, { name: request.name, memberId: request.memberId });
  const view = await apiKeys.get(keyId);
  if (!view) throw new Error(`key ${keyId} vanished after creation`);
  return { key, view };
}

/**
 * Customer-facing keys, authenticated by an API key. A member manages their own keys; owners,
 * admins and account-wide keys (provisioned by an operator without a member) manage everyone's.
 */
export function createKeyHandlers(apiKeys: ApiKeyStore, billing: Client<typeof BillingService>): ServiceImpl<typeof KeyService> {
  const callerOf = (headers: Headers) => callerOfKey(apiKeys, billing, headers);

  return {
    async createKey(request, context) {
      const caller = await callerOf(context.requestHeader);
      const memberId = request.memberId || caller.owner.memberId;
      requireRightsOver(caller, memberId, "create");
      if (memberId !== undefined && !caller.members.has(memberId)) {
        throw reasonError(Code.NotFound, "member_not_found", `account ${caller.owner.accountId} has no member ${memberId}`);
      }
      const created = await createKeyWithinLimits(apiKeys, { accountId: caller.owner.accountId, name: request.name, memberId });
      return { key: apiKeyMessage(created.view), apiKey: created.key };
    },

    async listKeys(request, context) {
      const caller = await callerOf(context.requestHeader);
      const memberId = request.memberId || (caller.role === "member" ? caller.owner.memberId : undefined);
      requireRightsOver(caller, memberId, "list");
      const keys = await apiKeys.listActive(caller.owner.accountId, { memberId, limit: ACTIVE_KEYS_PER_ACCOUNT_MAX });
      return { keys: keys.map(apiKeyMessage) };
    },

    async revokeKey(request, context) {
      const caller = await callerOf(context.requestHeader);
      const key = request.keyId ? await apiKeys.get(request.keyId) : undefined;
      // Another account's key answers like a missing one, so key ids cannot be probed.
      if (!key || key.accountId !== caller.owner.accountId) throw keyNotFound(request.keyId);
      requireRightsOver(caller, key.memberId, "revoke");
      const revoked = await apiKeys.revoke(key.keyId);
      if (!revoked) throw keyNotFound(request.keyId);
      return { key: apiKeyMessage(revoked) };
    },
  };
}

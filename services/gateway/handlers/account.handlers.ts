import type { ServiceImpl } from "@connectrpc/connect";
import { accountSettingsOf, updateAccountSettings, type SettingsOwners } from "./settings.routes.ts";
import type { AccountService } from "../../common/gen/cutline/gateway/v1/account_service_pb.ts";
import type { AccountReads } from "../account-reads.ts";
import { authenticate } from "../authentication.ts";
import { accountManagerOf } from "../caller-roles.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";

/** AccountService: the caller's own account, by its API key; the same figures as the REST routes. */
export function createAccountHandlers(apiKeys: ApiKeyStore, reads: AccountReads, owners: SettingsOwners): ServiceImpl<typeof AccountService> {
  return {
    async quote(request, context) {
      return reads.quote(await authenticate(apiKeys, context.requestHeader), request);
    },
    async getBalance(_request, context) {
      return reads.balance(await authenticate(apiKeys, context.requestHeader));
    },
    async listUsage(_request, context) {
      return reads.usage(await authenticate(apiKeys, context.requestHeader));
    },
    async getAccountSettings(_request, context) {
      return { settings: await accountSettingsOf(owners, await authenticate(apiKeys, context.requestHeader)) };
    },
    async updateAccountSettings(request, context) {
      const owner = await accountManagerOf(apiKeys, owners.billing, context.requestHeader, "change the account's settings");
      return { settings: await updateAccountSettings(owners, owner, { retentionHours: request.retentionHours, onExhausted: request.onExhausted }) };
    },
  };
}

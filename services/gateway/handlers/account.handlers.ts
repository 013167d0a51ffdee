import type { ServiceImpl } from "@connectrpc/connect";
import type { AccountService } from "../../common/gen/cutline/gateway/v1/account_service_pb.ts";
import type { AccountReads } from "../account-reads.ts";
import { authenticate } from "../authentication.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";

/** AccountService: the caller's own account, by its API key; the same figures as the REST routes. */
export function createAccountHandlers(apiKeys: ApiKeyStore, reads: AccountReads): ServiceImpl<typeof AccountService> {
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
  };
}

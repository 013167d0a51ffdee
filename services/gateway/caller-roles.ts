// Who an API key speaks for within its account: its member's role, read from billing. Owners and
// admins manage the account (everyone's keys, its settings, its payments); a member manages only
// their own keys. An account-wide key (provisioned by an operator without a member) acts as owner.
import { Code, type Client } from "@connectrpc/connect";
import { reasonError } from "../common/errors.ts";
import type { BillingService } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { authenticate } from "./authentication.ts";
import type { ApiKeyOwner, ApiKeyStore } from "./store/api-key.store.ts";

export type Role = "owner" | "admin" | "member";

export interface Caller {
  owner: ApiKeyOwner;
  role: Role;
  /** The account's member ids. */
  members: Set<string>;
}

/** The caller behind the request's API key, with its role in the account. */
export async function callerOf(apiKeys: ApiKeyStore, billing: Client<typeof BillingService>, headers: Headers): Promise<Caller> {
  const owner = await authenticate(apiKeys, headers);
  const { account } = await billing.getAccount({ accountId: owner.accountId });
  const members = new Set((account?.members ?? []).map((member) => member.memberId));
  if (owner.memberId === undefined) return { owner, role: "owner", members };
  const role = account?.members.find((member) => member.memberId === owner.memberId)?.role;
  return { owner, role: role === "owner" || role === "admin" ? role : "member", members };
}

/** A member acts on their own keys only; owners and admins on everyone's. */
export function requireRightsOver(caller: Pick<Caller, "owner" | "role">, memberId: string | null | undefined, action: string): void {
  if (caller.role !== "member" || memberId === caller.owner.memberId) return;
  throw reasonError(Code.PermissionDenied, "role_forbidden", `only an owner or admin may ${action} another member's keys; your role is member`);
}

/** Account-wide acts (settings, checkout, the billing portal) are an owner's or admin's. */
export function requireAccountManager(caller: Pick<Caller, "role">, action: string): void {
  if (caller.role !== "member") return;
  throw reasonError(Code.PermissionDenied, "role_forbidden", `only an owner or admin may ${action}; your role is member`);
}

/** The caller's key, refused unless it is an owner's or admin's. */
export async function accountManagerOf(apiKeys: ApiKeyStore, billing: Client<typeof BillingService>, headers: Headers, action: string): Promise<ApiKeyOwner> {
  const caller = await callerOf(apiKeys, billing, headers);
  requireAccountManager(caller, action);
  return caller.owner;
}

// The caller's account settings: `GET /v1/account/settings` and `PUT /v1/account/settings`
// (`{"retention_hours": n, "on_exhausted": "stop" | "overage" | "plan"}`), and the same through
// AccountService. Each setting lives with the service that enforces it: the orchestrator keeps
// retention (it applies it to the jobs it records and deletes their files when it runs out);
// billing keeps on_exhausted (billing_reserve applies it under the pool's lock, so no call can
// slip into overage past a "stop" set a moment before).
import { Code, type Client } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { checkRetentionHours } from "../../common/retention-hours.ts";
import type { BillingService } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { OrchestratorService } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { authenticate } from "../authentication.ts";
import { accountManagerOf } from "../caller-roles.ts";
import type { ApiKeyOwner, ApiKeyStore } from "../store/api-key.store.ts";
import { headersOf } from "./upload.admission.ts";
import { readJson, writeJson, type RestRoute } from "./route-table.ts";

/** Largest settings body, in bytes: one small object. */
const SETTINGS_BODY_BYTES_MAX = 4 * 1024;
const SETTINGS_FIELDS = new Set(["retention_hours", "on_exhausted"]);
/** What on_exhausted takes: the two choices, or "plan" for the plan's default. */
const ON_EXHAUSTED_VALUES = ["stop", "overage", "plan"] as const;

export interface AccountSettingsView {
  retentionHours: number;
  onExhausted: string;
  onExhaustedIsPlanDefault: boolean;
}

export interface AccountSettingsUpdate {
  retentionHours?: number;
  onExhausted?: string;
}

/** Where the settings live: the orchestrator (retention) and billing (on_exhausted). */
export interface SettingsOwners {
  orchestrator: Client<typeof OrchestratorService>;
  billing: Client<typeof BillingService>;
}

/** The account's settings as their owners have them, defaults filled in. */
export async function accountSettingsOf(owners: SettingsOwners, owner: ApiKeyOwner): Promise<AccountSettingsView> {
  const [{ settings }, { account }] = await Promise.all([
    owners.orchestrator.getAccountSettings({ accountId: owner.accountId }),
    owners.billing.getAccount({ accountId: owner.accountId }),
  ]);
  return { retentionHours: settings?.retentionHours ?? 0, onExhausted: account?.settings?.onExhausted ?? "", onExhaustedIsPlanDefault: account?.settings?.onExhaustedIsPlanDefault ?? true };
}

/**
 * Sets the fields given, each with its owner. The whole request is checked first (retention 0 to
 * RETENTION_HOURS_MAX hours, on_exhausted one of its values), so a refusal writes nothing; then
 * billing goes first: its refusal (a plan without overage) leaves the retention as it was.
 */
export async function updateAccountSettings(owners: SettingsOwners, owner: ApiKeyOwner, update: AccountSettingsUpdate): Promise<AccountSettingsView> {
  const retentionProblem = update.retentionHours === undefined ? undefined : checkRetentionHours(update.retentionHours);
  if (retentionProblem) throw reasonError(Code.InvalidArgument, "invalid_option", retentionProblem);
  if (update.onExhausted !== undefined && !(ON_EXHAUSTED_VALUES as readonly string[]).includes(update.onExhausted)) {
    throw reasonError(Code.InvalidArgument, "invalid_option", `on_exhausted must be stop, overage or plan (the plan's default); got ${JSON.stringify(update.onExhausted)}`);
  }
  const { account } = update.onExhausted === undefined
    ? await owners.billing.getAccount({ accountId: owner.accountId })
    : await owners.billing.setAccountSettings({ accountId: owner.accountId, onExhausted: update.onExhausted });
  const { settings } = await owners.orchestrator.setAccountSettings({ accountId: owner.accountId, retentionHours: update.retentionHours });
  return { retentionHours: settings?.retentionHours ?? 0, onExhausted: account?.settings?.onExhausted ?? "", onExhaustedIsPlanDefault: account?.settings?.onExhaustedIsPlanDefault ?? true };
}

/** `{"retention_hours": n, "on_exhausted": "stop"}` -> the update; an unknown field or a value of the wrong kind is named. */
export function settingsUpdateOf(body: unknown): AccountSettingsUpdate {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw reasonError(Code.InvalidArgument, "invalid_request", 'send a JSON object such as {"retention_hours": 1} or {"on_exhausted": "overage"}');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((field) => !SETTINGS_FIELDS.has(field));
  if (unknown.length > 0) throw reasonError(Code.InvalidArgument, "invalid_option", `unknown setting ${unknown.join(", ")}; the settings are ${[...SETTINGS_FIELDS].join(", ")}`);
  const update: AccountSettingsUpdate = {};
  const hours = fields.retention_hours;
  if (hours !== undefined) {
    if (typeof hours !== "number" || !Number.isSafeInteger(hours) || hours < 0) {
      throw reasonError(Code.InvalidArgument, "invalid_option", `retention_hours must be a whole number of hours from 0 (zero retention) to 24; got ${JSON.stringify(hours)}`);
    }
    update.retentionHours = hours;
  }
  const onExhausted = fields.on_exhausted;
  if (onExhausted !== undefined) {
    if (typeof onExhausted !== "string" || !(ON_EXHAUSTED_VALUES as readonly string[]).includes(onExhausted)) {
      throw reasonError(Code.InvalidArgument, "invalid_option", `on_exhausted must be stop, overage or plan (the plan's default); got ${JSON.stringify(onExhausted)}`);
    }
    update.onExhausted = onExhausted;
  }
  return update;
}

const settingsJson = (settings: AccountSettingsView) => ({
  retention_hours: settings.retentionHours,
  zero_retention: settings.retentionHours === 0,
  on_exhausted: settings.onExhausted,
  on_exhausted_is_plan_default: settings.onExhaustedIsPlanDefault,
});

export function settingsRoutes(apiKeys: ApiKeyStore, owners: SettingsOwners): RestRoute[] {
  return [
    {
      method: "GET",
      path: "/v1/account/settings",
      async handle(request, response) {
        const owner = await authenticate(apiKeys, headersOf(request));
        writeJson(response, 200, settingsJson(await accountSettingsOf(owners, owner)));
      },
    },
    {
      method: "PUT",
      path: "/v1/account/settings",
      async handle(request, response) {
        const owner = await accountManagerOf(apiKeys, owners.billing, headersOf(request), "change the account's settings");
        const update = settingsUpdateOf(await readJson(request, SETTINGS_BODY_BYTES_MAX));
        writeJson(response, 200, settingsJson(await updateAccountSettings(owners, owner, update)));
      },
    },
  ];
}

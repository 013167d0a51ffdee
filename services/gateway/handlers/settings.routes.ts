// The caller's account settings: `GET /v1/account/settings` and `PUT /v1/account/settings`
// (`{"retention_hours": n}`), and the same through AccountService. The orchestrator keeps them:
// it applies retention to the jobs it records and deletes their files when it runs out.
import { Code, type Client } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import type { OrchestratorService } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { authenticate } from "../authentication.ts";
import type { ApiKeyOwner, ApiKeyStore } from "../store/api-key.store.ts";
import { headersOf } from "./upload.admission.ts";
import { readJson, writeJson, type RestRoute } from "./route-table.ts";

/** Largest settings body, in bytes: one small object. */
const SETTINGS_BODY_BYTES_MAX = 4 * 1024;
const SETTINGS_FIELDS = new Set(["retention_hours"]);

export interface AccountSettingsView {
  retentionHours: number;
}

/** The account's settings as the orchestrator has them, defaults filled in. */
export async function accountSettingsOf(orchestrator: Client<typeof OrchestratorService>, owner: ApiKeyOwner): Promise<AccountSettingsView> {
  const { settings } = await orchestrator.getAccountSettings({ accountId: owner.accountId });
  return { retentionHours: settings?.retentionHours ?? 0 };
}

/** Sets the fields given; the orchestrator checks their bounds (0 to 24 hours) and names the limit. */
export async function updateAccountSettings(orchestrator: Client<typeof OrchestratorService>, owner: ApiKeyOwner, update: { retentionHours?: number }): Promise<AccountSettingsView> {
  const { settings } = await orchestrator.setAccountSettings({ accountId: owner.accountId, retentionHours: update.retentionHours });
  return { retentionHours: settings?.retentionHours ?? 0 };
}

/** `{"retention_hours": n}` -> the update; an unknown field or a value that is not a whole number is named. */
export function settingsUpdateOf(body: unknown): { retentionHours?: number } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw reasonError(Code.InvalidArgument, "invalid_request", 'send a JSON object such as {"retention_hours": 1}');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((field) => !SETTINGS_FIELDS.has(field));
  if (unknown.length > 0) throw reasonError(Code.InvalidArgument, "invalid_option", `unknown setting ${unknown.join(", ")}; the settings are ${[...SETTINGS_FIELDS].join(", ")}`);
  const hours = fields.retention_hours;
  if (hours === undefined) return {};
  if (typeof hours !== "number" || !Number.isSafeInteger(hours) || hours < 0) {
    throw reasonError(Code.InvalidArgument, "invalid_option", `retention_hours must be a whole number of hours from 0 (zero retention) to 24; got ${JSON.stringify(hours)}`);
  }
  return { retentionHours: hours };
}

const settingsJson = (settings: AccountSettingsView) => ({ retention_hours: settings.retentionHours, zero_retention: settings.retentionHours === 0 });

export function settingsRoutes(apiKeys: ApiKeyStore, orchestrator: Client<typeof OrchestratorService>): RestRoute[] {
  return [
    {
      method: "GET",
      path: "/v1/account/settings",
      async handle(request, response) {
        const owner = await authenticate(apiKeys, headersOf(request));
        writeJson(response, 200, settingsJson(await accountSettingsOf(orchestrator, owner)));
      },
    },
    {
      method: "PUT",
      path: "/v1/account/settings",
      async handle(request, response) {
        const owner = await authenticate(apiKeys, headersOf(request));
        const update = settingsUpdateOf(await readJson(request, SETTINGS_BODY_BYTES_MAX));
        writeJson(response, 200, settingsJson(await updateAccountSettings(orchestrator, owner, update)));
      },
    },
  ];
}

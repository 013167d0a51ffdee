// `cutline balance`, `cutline usage` and `cutline keys`: the caller's own account through
// AccountService and KeyService. Credits are shown as decimal credits (1.3), never millicredits.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import { creditsNumber, formatCredits } from "../services/common/credits.ts";
import { AccountService } from "../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { KeyService, type ApiKey } from "../services/common/gen/cutline/gateway/v1/key_service_pb.ts";
import { EXIT_OK, flag, text, type Command, type CommandContext } from "./command.ts";
import { CliError, withRetries } from "./connection.ts";

const dateOf = (timestamp: Timestamp | undefined): string | null => (timestamp ? timestampDate(timestamp).toISOString() : null);

/** The answer: the JSON line with --json, else readable lines. */
function answer(context: CommandContext, json: unknown, lines: string[]): number {
  if (context.json) context.print(JSON.stringify(json));
  else for (const line of lines) context.print(line);
  return EXIT_OK;
}

export const balanceCommand: Command = {
  summary: "balance                                  credits available, held, per bucket, and what they buy",
  help: `Usage: cutline balance [--json]

The account's available and held credits, each bucket with its expiry, and how many more of each
operation the balance buys.`,
  options: { json: flag },
  async run(context) {
    const balance = await withRetries(() => context.connection().client(AccountService).getBalance({}));
    const buckets = balance.buckets.map((bucket) => ({
      kind: bucket.kind,
      remainingCredits: creditsNumber(bucket.remainingMillicredits),
      heldCredits: creditsNumber(bucket.heldMillicredits),
      expiresAt: dateOf(bucket.expiresAt),
    }));
    const affordable = balance.affordable.map((operation) => ({ operation: operation.operation, description: operation.description, count: Number(operation.count) }));
    return answer(
      context,
      { availableCredits: creditsNumber(balance.availableMillicredits), heldCredits: creditsNumber(balance.heldMillicredits), buckets, affordable },
      [
        `available: ${formatCredits(balance.availableMillicredits)} credits (held: ${formatCredits(balance.heldMillicredits)})`,
        ...buckets.map((bucket) => `  ${bucket.kind}: ${bucket.remainingCredits} credits, ${bucket.expiresAt ? `expires ${bucket.expiresAt}` : "never expires"}`),
        ...affordable.map((operation) => `  buys ${operation.count} × ${operation.description || operation.operation}`),
      ],
    );
  },
};

export const usageCommand: Command = {
  summary: "usage                                    calls and credits this cycle, per day and key",
  help: `Usage: cutline usage [--json]

Captured calls and credits of the current billing cycle, per UTC day, API key and member, and the
cycle's calls against the plan's monthly quota.`,
  options: { json: flag },
  async run(context) {
    const usage = await withRetries(() => context.connection().client(AccountService).listUsage({}));
    const rows = usage.rows.map((row) => ({ date: row.date, apiKeyId: row.apiKeyId, memberId: row.memberId, calls: Number(row.calls), credits: creditsNumber(row.capturedMillicredits) }));
    const quota = usage.monthlyCallsMax > 0n ? ` of ${usage.monthlyCallsMax}` : "";
    return answer(
      context,
      { cycleStartedAt: dateOf(usage.cycleStartedAt), cycleEndsAt: dateOf(usage.cycleEndsAt), cycleCalls: Number(usage.cycleCalls), monthlyCallsMax: Number(usage.monthlyCallsMax), rows },
      [
        `cycle ${dateOf(usage.cycleStartedAt) ?? "?"} to ${dateOf(usage.cycleEndsAt) ?? "?"}: ${usage.cycleCalls}${quota} calls`,
        ...rows.map((row) => `  ${row.date}  key ${row.apiKeyId}${row.memberId ? ` (member ${row.memberId})` : ""}: ${row.calls} calls, ${row.credits} credits`),
      ],
    );
  },
};

const keyJson = (key: ApiKey) => ({
  keyId: key.keyId,
  name: key.name,
  memberId: key.memberId,
  keyPrefix: key.keyPrefix,
  createdAt: dateOf(key.createdAt),
  lastUsedAt: dateOf(key.lastUsedAt),
  revokedAt: dateOf(key.revokedAt),
});

export const keysCommand: Command = {
  summary: "keys [list | create [--name n] | revoke <key id>]   the account's API keys",
  help: `Usage: cutline keys [list] [--member <id>] [--json]
       cutline keys create [--name <name>] [--member <id>] [--json]
       cutline keys revoke <key id> [--json]

list: the keys that are not revoked, newest first (a member's own; an owner or admin sees all).
create: a new key, printed once (only its hash is stored). revoke: the key stops working at once.`,
  options: { name: text, member: text, json: flag },
  async run(context) {
    const [action = "list", ...rest] = context.positionals;
    const keys = () => context.connection().client(KeyService);
    const member = typeof context.values.member === "string" ? context.values.member : "";
    if (action === "list") {
      if (rest.length > 0) throw new CliError(`keys list takes no arguments (got ${rest.join(" ")})`, 2);
      const listed = await withRetries(() => keys().listKeys({ memberId: member }));
      return answer(
        context,
        { keys: listed.keys.map(keyJson) },
        listed.keys.map((key) => `${key.keyId}  ${key.keyPrefix}…  ${key.name || "(no name)"}${key.memberId ? `  member ${key.memberId}` : ""}  last used ${dateOf(key.lastUsedAt) ?? "never"}`),
      );
    }
    if (action === "create") {
      if (rest.length > 0) throw new CliError(`keys create takes --name, not arguments (got ${rest.join(" ")})`, 2);
      const name = typeof context.values.name === "string" ? context.values.name : `cli ${randomUUID().slice(0, 8)}`;
      const created = await keys().createKey({ name, memberId: member });
      return answer(context, { ...keyJson(created.key!), apiKey: created.apiKey }, [`created key ${created.key?.keyId} (${name}); shown once, store it now:`, created.apiKey]);
    }
    if (action === "revoke") {
      if (rest.length !== 1) throw new CliError("keys revoke takes one key id", 2);
      const revoked = await withRetries(() => keys().revokeKey({ keyId: rest[0]! }));
      return answer(context, keyJson(revoked.key!), [`revoked key ${revoked.key?.keyId} at ${dateOf(revoked.key?.revokedAt)}`]);
    }
    throw new CliError(`keys: unknown action ${JSON.stringify(action)} (list, create or revoke)`, 2);
  },
};

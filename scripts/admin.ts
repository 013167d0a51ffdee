// The operator's CLI: `npm run -s admin -- <command> [flags]`. It talks HTTP to the running gateway's
// admin API (/admin/v1) and never opens the database (the embedded one allows one process).
// The gateway's URL comes from CUTLINE_URL (default http://127.0.0.1:8080); its token from
// CUTLINE_ADMIN_TOKEN, else $CUTLINE_DATA_DIR/admin-token (default ./.data). With --json the last
// line printed is the answer as JSON; credits are decimal numbers of credits both ways. Any failure
// is one line on stderr and a non-zero exit, never a stack trace.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { parseCredits } from "../services/common/credits.ts";

const DEFAULT_URL = "http://127.0.0.1:8080";
const DEFAULT_DATA_DIR = "./.data";
/** How long one admin call may take, in milliseconds. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Pages list-accounts reads at most (500 accounts each): 100,000 accounts. */
const LIST_PAGES_MAX = 200;
const LIST_PAGE_SIZE = 500;

/** What the operator got wrong or what went wrong, said in one line; `exitCode` 2 for usage. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | undefined>;
type Call = (method: string, path: string, body?: Record<string, unknown>) => Promise<Record<string, unknown>>;

interface Command {
  usage: string;
  options: Options;
  /** The answer as JSON (only the interface's keys) and as a readable line. */
  run(values: Values, call: Call): Promise<{ json: Record<string, unknown>; line: string }>;
}

const text = { type: "string" } as const;

function required(values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value === "") throw new CliError(`--${name} is required`, 2);
  return value;
}

/** A flag's credits, checked here so a typo never reaches the gateway: positive, at most 3 decimals. */
function credits(values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const parsed = parseCredits(String(raw));
  if (!parsed.ok) throw new CliError(`--${name}: ${parsed.problem}`, 2);
  if (parsed.millicredits <= 0n) throw new CliError(`--${name} must be more than 0`, 2);
  // Validated above: at most 15 significant digits, so the number's JSON text is this decimal.
  return Number(raw);
}

function wholeNumber(values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(String(raw)) || Number(raw) < 1) throw new CliError(`--${name} must be a whole number of at least 1`, 2);
  return Number(raw);
}

const path = (...parts: string[]) => parts.map(encodeURIComponent).join("/");

const COMMANDS: Record<string, Command> = {
  "create-account": {
    usage: "create-account --plan <code> [--account <id>] [--credits <n>] [--email <owner's address>]",
    options: { plan: text, account: text, credits: text, email: text },
    async run(values, call) {
      const answer = await call("POST", "accounts", { plan: required(values, "plan"), accountId: values.account, credits: credits(values, "credits"), email: values.email });
      return {
        json: { accountId: answer.accountId, apiKey: answer.apiKey },
        line: `created account ${answer.accountId} on plan ${answer.plan} with ${answer.availableCredits} credits; API key (shown once): ${answer.apiKey}`,
      };
    },
  },
  grant: {
    usage: "grant --account <id> --credits <n> [--kind top_up|promo] [--expires-days <n>]",
    options: { account: text, credits: text, kind: text, "expires-days": text },
    async run(values, call) {
      const accountId = required(values, "account");
      required(values, "credits");
      const body = { credits: credits(values, "credits"), kind: values.kind, expiresDays: wholeNumber(values, "expires-days") };
      const answer = await call("POST", `accounts/${path(accountId)}/grants`, body);
      const expiry = answer.expiresAt ? `, expiring ${answer.expiresAt}` : "";
      return {
        json: { accountId: answer.accountId, availableCredits: answer.availableCredits },
        line: `granted ${answer.grantedCredits} credits (${answer.kind}${expiry}) to ${accountId}; available now: ${answer.availableCredits} credits`,
      };
    },
  },
  balance: {
    usage: "balance --account <id>",
    options: { account: text },
    async run(values, call) {
      const answer = await call("GET", `accounts/${path(required(values, "account"))}/balance`);
      return {
        json: { accountId: answer.accountId, availableCredits: answer.availableCredits, heldCredits: answer.heldCredits },
        line: `${answer.accountId}: ${answer.availableCredits} credits available, ${answer.heldCredits} held`,
      };
    },
  },
  "change-plan": {
    usage: "change-plan --account <id> --plan <code>",
    options: { account: text, plan: text },
    async run(values, call) {
      const answer = await call("POST", `accounts/${path(required(values, "account"))}/plan`, { plan: required(values, "plan") });
      return { json: { accountId: answer.accountId, plan: answer.plan }, line: `${answer.accountId} is now on plan ${answer.plan}` };
    },
  },
  "create-key": {
    usage: "create-key --account <id> [--name <n>]",
    options: { account: text, name: text },
    async run(values, call) {
      const accountId = required(values, "account");
      const answer = await call("POST", `accounts/${path(accountId)}/keys`, { name: values.name });
      return { json: { keyId: answer.keyId, apiKey: answer.apiKey }, line: `created key ${answer.keyId} for ${accountId}; API key (shown once): ${answer.apiKey}` };
    },
  },
  "revoke-key": {
    usage: "revoke-key --key <keyId>",
    options: { key: text },
    async run(values, call) {
      const answer = await call("DELETE", `keys/${path(required(values, "key"))}`);
      return { json: { keyId: answer.keyId, revoked: answer.revoked }, line: `revoked key ${answer.keyId} of ${answer.accountId}` };
    },
  },
  "list-accounts": {
    usage: "list-accounts",
    options: {},
    async run(_values, call) {
      const accounts: { accountId: unknown; plan: unknown; availableCredits: unknown }[] = [];
      let pageToken = "";
      for (let page = 0; page < LIST_PAGES_MAX; page += 1) {
        const answer = await call("GET", `accounts?page_size=${LIST_PAGE_SIZE}&page_token=${encodeURIComponent(pageToken)}`);
        for (const account of answer.accounts as Record<string, unknown>[]) {
          accounts.push({ accountId: account.accountId, plan: account.plan, availableCredits: account.availableCredits });
        }
        pageToken = String(answer.nextPageToken ?? "");
        if (!pageToken) break;
      }
      const rows = accounts.map((account) => `${account.accountId}\t${account.plan}\t${account.availableCredits}`);
      return { json: { accounts }, line: ["account\tplan\tavailable credits", ...rows, `${accounts.length} accounts`].join("\n") };
    },
  },
  refund: {
    usage: "refund --job <id>",
    options: { job: text },
    async run(values, call) {
      const answer = await call("POST", `jobs/${path(required(values, "job"))}/refund`);
      return { json: { jobId: answer.jobId, refundedCredits: answer.refundedCredits }, line: String(answer.detail) };
    },
  },
  outbox: {
    usage: "outbox [--all] | outbox --mark-sent <id>",
    options: { all: { type: "boolean" }, "mark-sent": text },
    async run(values, call) {
      const markSent = values["mark-sent"];
      if (markSent !== undefined) {
        const email = await call("POST", `outbox/${path(required(values, "mark-sent"))}/sent`);
        return { json: email, line: `marked ${email.id} sent at ${email.sentAt}` };
      }
      const answer = await call("GET", `outbox${values.all === true ? "?include_sent=true" : ""}`);
      const emails = answer.emails as Record<string, unknown>[];
      const rows = emails.map((email) => `${email.id}\t${email.accountId}\t${email.kind}\t${email.recipient || "(no email)"}\t${email.sentAt ?? "unsent"}\t${email.subject}`);
      return { json: { emails }, line: ["id\taccount\tkind\trecipient\tsent\tsubject", ...rows, `${emails.length} emails`].join("\n") };
    },
  },
  "webhook-secret": {
    usage: "webhook-secret --account <id> [--rotate]",
    options: { account: text, rotate: { type: "boolean" } },
    async run(values, call) {
      const accountId = required(values, "account");
      const rotate = values.rotate === true;
      const answer = await call(rotate ? "POST" : "GET", `accounts/${path(accountId)}/webhook-secret`);
      return { json: { secret: answer.secret }, line: `${rotate ? "new " : ""}webhook secret of ${accountId}: ${answer.secret}` };
    },
  },
};

function usage(): string {
  return ["usage: npm run -s admin -- <command> [flags] [--json]", ...Object.values(COMMANDS).map((command) => `  ${command.usage}`)].join("\n");
}

/** CUTLINE_ADMIN_TOKEN, else the file the gateway keeps it in. */
function adminToken(environment: NodeJS.ProcessEnv): string {
  if (environment.CUTLINE_ADMIN_TOKEN) return environment.CUTLINE_ADMIN_TOKEN;
  const file = join(environment.CUTLINE_DATA_DIR || DEFAULT_DATA_DIR, "admin-token");
  try {
    const token = readFileSync(file, "utf8").trim();
    if (token) return token;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw new CliError(`cannot read the admin token from ${file}: ${(error as Error).message}`);
  }
  throw new CliError(`no admin token: set CUTLINE_ADMIN_TOKEN, or CUTLINE_DATA_DIR to the gateway's data directory (${file} does not exist or is empty)`);
}

/** The reason a fetch failed, as the operator can act on it (ECONNREFUSED, ENOTFOUND, a timeout). */
function networkReason(error: unknown): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) return `no answer within ${REQUEST_TIMEOUT_MS} ms`;
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

/** Calls the admin API; the token is read at the first call, so bad flags are reported before a missing token. */
function caller(baseUrl: string, tokenOf: () => string): Call {
  return async (method, route, body) => {
    const token = tokenOf();
    const url = `${baseUrl.replace(/\/+$/, "")}/admin/v1/${route}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new CliError(`cannot reach the gateway at ${baseUrl} (${networkReason(error)}): is it running? CUTLINE_URL sets where`);
    }
    const answer = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    if (response.ok && answer) return answer;
    const first = (answer?.errors as { title?: string; code?: string; detail?: string }[] | undefined)?.[0];
    if (!first) throw new CliError(`the gateway at ${baseUrl} answered HTTP ${response.status} without an admin API error: is CUTLINE_URL the gateway?`);
    const detail = first.detail && first.detail !== first.title ? `: ${first.detail}` : "";
    throw new CliError(`${first.title} (${first.code}, HTTP ${response.status})${detail}`);
  };
}

async function main(argv: string[], environment: NodeJS.ProcessEnv): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    if (!name) process.exitCode = 2;
    return;
  }
  const command = COMMANDS[name];
  if (!command) throw new CliError(`unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(", ")}`, 2);
  let values: Values;
  try {
    ({ values } = parseArgs({ args: rest, options: { ...command.options, json: { type: "boolean" } }, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new CliError(`${(error as Error).message.split("\n")[0]}; usage: ${command.usage}`, 2);
  }
  const call = caller(environment.CUTLINE_URL || DEFAULT_URL, () => adminToken(environment));
  const answer = await command.run(values, call);
  console.log(values.json ? JSON.stringify(answer.json) : answer.line);
}

try {
  await main(process.argv.slice(2), process.env);
} catch (error) {
  const message = error instanceof CliError ? error.message : `unexpected failure: ${error instanceof Error ? error.message : String(error)}`;
  console.error(`admin: ${message.split("\n")[0]}`);
  process.exitCode = error instanceof CliError ? error.exitCode : 1;
}

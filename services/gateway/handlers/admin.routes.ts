// The operator's API under /admin/v1 on the gateway's public port, behind its own bearer token
// (CUTLINE_ADMIN_TOKEN or $CUTLINE_DATA_DIR/admin-token). JSON in and out; credits are decimal
// numbers of credits, converted exactly to and from the ledger's millicredits. The admin CLI
// (scripts/admin.ts) is its client: the embedded database allows one process, so the CLI never
// opens it and everything an operator does goes through here.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { randomBytes, randomUUID } from "node:crypto";
import { httpStatusOf, reasonError, reasonOf } from "../../common/errors.ts";
import { creditsNumber, parseCreditsValue } from "../../common/credits.ts";
import { Pool, type BillingService } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { OrchestratorService, OutboxEmail } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { Logger } from "../../common/logging.ts";
import { markHttpRoute } from "../../common/metrics.ts";
import type { HttpRequest, HttpResponse, HttpRoutes } from "../../common/server.ts";
import { checkAdminToken } from "../domain/admin-token.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";
import { createKeyWithinLimits, keyNotFound } from "./key.handlers.ts";

export const ADMIN_PATH_PREFIX = "/admin/v1";
/** Largest admin request body, in bytes: every admin call is a few small fields. */
export const ADMIN_BODY_BYTES_MAX = 16 * 1024;
/** Longest grant lifetime, in days (ten years). */
export const GRANT_EXPIRY_DAYS_MAX = 3650;
/** Kinds an operator grants through the admin API; refunds go through the job's refund route. */
export const ADMIN_GRANT_KINDS = ["top_up", "promo"] as const;
/** The member recorded as owner of accounts the admin API creates; their first key acts for it. */
export const OWNER_MEMBER_ID = "owner";
const DAY_MS = 24 * 60 * 60 * 1000;

export interface AdminRouteDependencies {
  token: string;
  apiKeys: ApiKeyStore;
  billing: Client<typeof BillingService>;
  orchestrator: Client<typeof OrchestratorService>;
  log: Logger;
}

type Json = Record<string, unknown>;
interface AdminRequest {
  params: string[];
  query: URLSearchParams;
  body: () => Promise<Json>;
  headers: HttpRequest["headers"];
}
type AdminHandler = (request: AdminRequest) => Promise<{ status?: number; body: Json }>;
interface Route {
  method: string;
  pattern: RegExp;
  handler: AdminHandler;
}

const invalid = (message: string) => reasonError(Code.InvalidArgument, "invalid_argument", message);

function requiredText(body: Json, field: string): string {
  const value = body[field];
  if (typeof value !== "string" || value === "") throw invalid(`${field} is required (a non-empty string)`);
  return value;
}

function optionalText(body: Json, field: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw invalid(`${field} must be a string`);
  return value;
}

/** Credits from JSON as millicredits: a positive decimal of at most 3 decimals. */
function positiveCredits(body: Json, field: string): bigint {
  const parsed = parseCreditsValue(body[field]);
  if (!parsed.ok) throw invalid(`${field}: ${parsed.problem}`);
  if (parsed.millicredits <= 0n) throw invalid(`${field} must be more than 0`);
  return parsed.millicredits;
}

async function readJson(request: HttpRequest): Promise<Json> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > ADMIN_BODY_BYTES_MAX) throw reasonError(Code.InvalidArgument, "too_many_bytes", `the request body exceeds ${ADMIN_BODY_BYTES_MAX} bytes (ADMIN_BODY_BYTES_MAX)`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid("the body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw invalid("the body must be a JSON object");
  return parsed as Json;
}

function accountRoutes({ apiKeys, billing }: AdminRouteDependencies): Route[] {
  const balanceOf = async (accountId: string) => {
    const balance = await billing.getBalance({ accountId, pool: Pool.API });
    return { accountId, availableCredits: creditsNumber(balance.availableMillicredits), heldCredits: creditsNumber(balance.heldMillicredits) };
  };
  return [
    {
      method: "POST",
      pattern: /^\/accounts$/,
      async handler(request) {
        const body = await request.body();
        const planCode = requiredText(body, "plan");
        const accountId = optionalText(body, "accountId") ?? `acct_${randomBytes(8).toString("hex")}`;
        const credits = body.credits === undefined || body.credits === null ? undefined : positiveCredits(body, "credits");
        // No sign-up trial: an operator's account gets what the operator grants.
        // The owner's email, where the account's credit notices go (the email outbox).
        const ownerEmail = optionalText(body, "email") ?? "";
        if (ownerEmail !== "" && !EMAIL_PATTERN.test(ownerEmail)) throw invalid(`email must be an address such as owner@example.com; got ${JSON.stringify(ownerEmail)}`);
        const created = await billing.createAccount({ accountId, planCode, ownerMemberId: OWNER_MEMBER_ID, ownerEmail, grantTrial: false });
        if (!created.created) {
          throw reasonError(Code.AlreadyExists, "account_exists", `account ${accountId} already exists: use create-key for another key and grant for credits`);
        }
        if (credits !== undefined) {
          await billing
            .grant({ accountId, pool: Pool.API, kind: "top_up", amountMillicredits: credits, idempotencyKey: `create-account:${accountId}`, description: "granted at account creation" })
            .catch((error: unknown) => {
              // The account exists now; say so, so the operator finishes it rather than retrying create-account.
              const failure = ConnectError.from(error);
              const reason = reasonOf(failure) ?? "internal";
              const message = `${titleOf(failure, reason)}; account ${accountId} was created without credits or a key: use grant and create-key`;
              throw reasonError(failure.code, reason, message, { cause: error });
            });
        }
        const { key, view } = await createKeyWithinLimits(apiKeys, { accountId, name: "first key", memberId: OWNER_MEMBER_ID });
        return { status: 201, body: { ...(await balanceOf(accountId)), apiKey: key, keyId: view.keyId, plan: planCode } };
      },
    },
    {
      method: "GET",
      pattern: /^\/accounts$/,
      async handler(request) {
        const pageSize = Number(request.query.get("page_size") ?? 0);
        if (!Number.isInteger(pageSize) || pageSize < 0) throw invalid("page_size must be a whole number");
        const page = await billing.listAccounts({ pageSize, pageToken: request.query.get("page_token") ?? "" });
        const accounts = page.accounts.map((account) => ({
          accountId: account.accountId,
          plan: account.planCode,
          availableCredits: creditsNumber(account.availableMillicredits),
          heldCredits: creditsNumber(account.heldMillicredits),
        }));
        return { body: { accounts, nextPageToken: page.nextPageToken } };
      },
    },
    { method: "GET", pattern: /^\/accounts\/([^/]+)\/balance$/, handler: async (request) => ({ body: await balanceOf(request.params[0]!) }) },
    {
      method: "POST",
      pattern: /^\/accounts\/([^/]+)\/plan$/,
      async handler(request) {
        const accountId = request.params[0]!;
        const { account } = await billing.changePlan({ accountId, planCode: requiredText(await request.body(), "plan") });
        return { body: { accountId, plan: account?.plan?.code ?? "" } };
      },
    },
  ];
}

function creditRoutes({ billing, orchestrator }: AdminRouteDependencies): Route[] {
  return [
    {
      method: "POST",
      pattern: /^\/accounts\/([^/]+)\/grants$/,
      async handler(request) {
        const accountId = request.params[0]!;
        const body = await request.body();
        const amountMillicredits = positiveCredits(body, "credits");
        const kind = optionalText(body, "kind") ?? "top_up";
        if (!(ADMIN_GRANT_KINDS as readonly string[]).includes(kind)) throw invalid(`kind must be one of ${ADMIN_GRANT_KINDS.join(", ")}`);
        const days = body.expiresDays;
        if (days !== undefined && days !== null && (!Number.isInteger(days) || (days as number) < 1 || (days as number) > GRANT_EXPIRY_DAYS_MAX)) {
          throw invalid(`expiresDays must be a whole number of days from 1 to ${GRANT_EXPIRY_DAYS_MAX} (GRANT_EXPIRY_DAYS_MAX)`);
        }
        const expiresAt = typeof days === "number" ? new Date(Date.now() + days * DAY_MS) : undefined;
        // A client retrying the same call sends the same Idempotency-Key and is granted once.
        const idempotencyKey = String(request.headers["idempotency-key"] ?? "") || randomUUID();
        const granted = await billing.grant({
          accountId,
          pool: Pool.API,
          kind,
          amountMillicredits,
          expiresAt: expiresAt ? timestampFromDate(expiresAt) : undefined,
          idempotencyKey,
          description: "granted by an operator",
        });
        return {
          status: granted.replayed ? 200 : 201,
          body: {
            accountId,
            availableCredits: creditsNumber(granted.availableMillicredits),
            grantedCredits: creditsNumber(amountMillicredits),
            kind,
            expiresAt: expiresAt?.toISOString() ?? null,
          },
        };
      },
    },
    {
      method: "POST",
      pattern: /^\/jobs\/([^/]+)\/refund$/,
      async handler(request) {
        const jobId = request.params[0]!;
        const { job } = await orchestrator.getJob({ jobId }).catch((error: unknown) => {
          if (error instanceof ConnectError && error.code === Code.NotFound) return { job: undefined };
          throw error;
        });
        if (!job) throw reasonError(Code.NotFound, "job_not_found", `job ${jobId} not found`);
        if (job.chargedMillicredits <= 0n) {
          throw reasonError(Code.FailedPrecondition, "job_not_charged", `job ${jobId} was not charged (nothing captured): there is nothing to refund`);
        }
        // One refund per job: the grant's key is the job's, so a second refund is a replay that grants nothing.
        const granted = await billing.grant({
          accountId: job.accountId,
          pool: Pool.API,
          kind: "refund",
          amountMillicredits: job.chargedMillicredits,
          idempotencyKey: `refund:${jobId}`,
          description: `refund of job ${jobId}`,
        });
        const refunded = granted.replayed ? 0n : job.chargedMillicredits;
        return {
          body: {
            jobId,
            accountId: job.accountId,
            refundedCredits: creditsNumber(refunded),
            alreadyRefunded: granted.replayed,
            detail: granted.replayed
              ? `job ${jobId} was already refunded (${creditsNumber(job.chargedMillicredits)} credits): nothing more was refunded`
              : `refunded ${creditsNumber(refunded)} credits to account ${job.accountId}`,
            availableCredits: creditsNumber(granted.availableMillicredits),
          },
        };
      },
    },
  ];
}

/** One address, loosely: something@something.something, no spaces (the operator's relay checks the rest). */
const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** The email outbox (credit notices) an operator relays: list it, and mark a row sent. */
function outboxRoutes({ orchestrator }: AdminRouteDependencies): Route[] {
  const emailJson = (email: OutboxEmail) => ({
    id: email.id,
    accountId: email.accountId,
    kind: email.kind,
    recipient: email.recipient,
    subject: email.subject,
    body: email.body,
    createdAt: email.createdAt ? timestampDate(email.createdAt).toISOString() : null,
    sentAt: email.sentAt ? timestampDate(email.sentAt).toISOString() : null,
  });
  return [
    {
      method: "GET",
      pattern: /^\/outbox$/,
      async handler(request) {
        const { emails } = await orchestrator.listEmailOutbox({ includeSent: request.query.get("include_sent") === "true" });
        return { body: { emails: emails.map(emailJson) } };
      },
    },
    {
      method: "POST",
      pattern: /^\/outbox\/([^/]+)\/sent$/,
      handler: async (request) => ({ body: emailJson((await orchestrator.markEmailSent({ id: request.params[0]! })).email!) }),
    },
  ];
}

/** The account's webhook signing secret (made on first read), or a new one with `rotate`. */
function webhookRoutes({ orchestrator }: AdminRouteDependencies): Route[] {
  return [
    {
      method: "GET",
      pattern: /^\/accounts\/([^/]+)\/webhook-secret$/,
      handler: async (request) => ({ body: { accountId: request.params[0]!, secret: (await orchestrator.getWebhookSecret({ accountId: request.params[0]! })).secret } }),
    },
    {
      method: "POST",
      pattern: /^\/accounts\/([^/]+)\/webhook-secret$/,
      handler: async (request) => ({ body: { accountId: request.params[0]!, secret: (await orchestrator.rotateWebhookSecret({ accountId: request.params[0]! })).secret, rotated: true } }),
    },
  ];
}

function keyRoutes({ apiKeys, billing }: AdminRouteDependencies): Route[] {
  return [
    {
      method: "POST",
      pattern: /^\/accounts\/([^/]+)\/keys$/,
      async handler(request) {
        const accountId = request.params[0]!;
        const body = await request.body();
        // The key acts for the given member, else for the account's owner (accounts made here have one).
        const members = (await billing.getAccount({ accountId })).account?.members ?? [];
        const memberId = optionalText(body, "memberId") ?? members.find((member) => member.role === "owner")?.memberId;
        if (memberId !== undefined && !members.some((member) => member.memberId === memberId)) {
          throw reasonError(Code.NotFound, "member_not_found", `account ${accountId} has no member ${memberId}`);
        }
        const { key, view } = await createKeyWithinLimits(apiKeys, { accountId, name: optionalText(body, "name") ?? "", memberId });
        return { status: 201, body: { keyId: view.keyId, apiKey: key, accountId, name: view.name, memberId: view.memberId } };
      },
    },
    {
      method: "DELETE",
      pattern: /^\/keys\/([^/]+)$/,
      async handler(request) {
        const keyId = request.params[0]!;
        const revoked = await apiKeys.revoke(keyId);
        if (!revoked) throw keyNotFound(keyId);
        return { body: { keyId, revoked: true, accountId: revoked.accountId, revokedAt: revoked.revokedAt?.toISOString() ?? null } };
      },
    },
  ];
}

/** The error's message without the `reason: ` prefix billing puts on it (the reason is the code). */
function titleOf(error: ConnectError, code: string): string {
  return error.rawMessage.startsWith(`${code}: `) ? error.rawMessage.slice(code.length + 2) : error.rawMessage;
}

function send(response: HttpResponse, status: number, body: Json): void {
  response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  response.end(JSON.stringify(body));
}

function sendError(request: HttpRequest, response: HttpResponse, error: unknown, log: Logger): void {
  const connectError = ConnectError.from(error);
  const status = httpStatusOf(connectError);
  const code = reasonOf(connectError) ?? Code[connectError.code].replace(/[A-Z]/g, (letter, index: number) => `${index ? "_" : ""}${letter.toLowerCase()}`);
  if (status >= 500) log.error({ err: connectError.cause ?? error, url: request.url }, "admin request failed");
  else log.info({ url: request.url, code }, connectError.rawMessage);
  if (response.headersSent || response.destroyed) return;
  // A server fault's message may name internals: the caller gets the code, the log the cause.
  const title = status >= 500 ? "internal error: see the gateway's log" : titleOf(connectError, code);
  const detail = ADMIN_ERROR_DETAILS[code] ?? title;
  send(response, status, { errors: [{ title, code, detail }] });
}

const ADMIN_ERROR_DETAILS: Record<string, string> = {
  missing_admin_token: "send Authorization: Bearer <token>, the token in CUTLINE_ADMIN_TOKEN or $CUTLINE_DATA_DIR/admin-token",
  invalid_admin_token: "the token must be the gateway's CUTLINE_ADMIN_TOKEN, or the one in its $CUTLINE_DATA_DIR/admin-token",
};

/** A route's pattern as a template for the metrics' route label: `^\/accounts\/([^/]+)$` reads `/accounts/{param}`. */
function patternTemplate(pattern: RegExp): string {
  return pattern.source.replace(/^\^|\$$/g, "").replace(/\([^)]*\)/g, "{param}").replace(/\\/g, "");
}

/** `/admin/v1/...`; other paths are left to the next routes (answers false). */
export function createAdminRoutes(dependencies: AdminRouteDependencies): HttpRoutes {
  const routes = [...accountRoutes(dependencies), ...creditRoutes(dependencies), ...keyRoutes(dependencies), ...webhookRoutes(dependencies), ...outboxRoutes(dependencies)];
  return async (request, response) => {
    const url = new URL(request.url ?? "/", "http://admin");
    if (url.pathname !== ADMIN_PATH_PREFIX && !url.pathname.startsWith(`${ADMIN_PATH_PREFIX}/`)) return false;
    markHttpRoute(request, `${ADMIN_PATH_PREFIX}/*`);
    try {
      // The token first: without it, not even which routes exist is answered.
      const check = checkAdminToken(dependencies.token, request.headers.authorization);
      if (!check.ok && check.reason === "missing_admin_token") throw reasonError(Code.Unauthenticated, "missing_admin_token", "the admin API needs its token");
      if (!check.ok) throw reasonError(Code.Unauthenticated, "invalid_admin_token", "the admin token is wrong");
      const path = url.pathname.slice(ADMIN_PATH_PREFIX.length);
      const matching = routes.filter((route) => route.pattern.test(path));
      const route = matching.find((candidate) => candidate.method === request.method);
      if (matching[0]) markHttpRoute(request, `${ADMIN_PATH_PREFIX}${patternTemplate(matching[0].pattern)}`);
      if (!route) {
        if (matching.length > 0) {
          response.setHeader("allow", matching.map((candidate) => candidate.method).join(", "));
          send(response, 405, { errors: [{ title: `use ${matching.map((candidate) => candidate.method).join(" or ")}`, code: "method_not_allowed", detail: `${request.method} ${url.pathname}` }] });
          return true;
        }
        throw reasonError(Code.NotFound, "route_not_found", `no admin route ${request.method} ${url.pathname}`);
      }
      const params = (route.pattern.exec(path) ?? []).slice(1).map((part) => decodeURIComponent(part));
      const answer = await route.handler({ params, query: url.searchParams, body: () => readJson(request), headers: request.headers });
      send(response, answer.status ?? 200, answer.body);
    } catch (error) {
      sendError(request, response, error, dependencies.log);
    }
    return true;
  };
}

// REST for the caller's own account: POST /v1/quote, GET /v1/credit/balance, GET /v1/usage.
// Credits are decimal numbers of credits (1.3), formatted from integer millicredits.
import { create } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { QuoteOperation, QuoteRequestSchema, QuoteSize, type ListUsageResponse } from "../../common/gen/cutline/gateway/v1/account_service_pb.ts";
import type { AccountReads } from "../account-reads.ts";
import { authenticate } from "../authentication.ts";
import type { ApiKeyOwner, ApiKeyStore } from "../store/api-key.store.ts";
import type { HttpRequest, HttpResponse } from "../../common/server.ts";
import { headersOf } from "./upload.admission.ts";
import { creditsNumber } from "../../common/credits.ts";
import { readJson, writeJson, type RestRoute } from "./route-table.ts";

/** Largest quote body, in bytes: a handful of fields. */
const QUOTE_BODY_BYTES_MAX = 16 * 1024;

const QUOTE_OPERATIONS: Readonly<Record<string, QuoteOperation>> = {
  matting: QuoteOperation.MATTING,
  smart_crop: QuoteOperation.SMART_CROP,
  video_matting: QuoteOperation.VIDEO_MATTING,
};
const QUOTE_SIZES: Readonly<Record<string, QuoteSize>> = { preview: QuoteSize.PREVIEW, full: QuoteSize.FULL, hd: QuoteSize.HD };

function invalid(field: string, message: string) {
  return reasonError(Code.InvalidArgument, "invalid_option", `${field}: ${message}`);
}

function oneOf<T>(table: Readonly<Record<string, T>>, value: unknown, field: string): T {
  const found = typeof value === "string" ? table[value] : undefined;
  if (found === undefined) throw invalid(field, `must be one of ${Object.keys(table).join(", ")}${value === undefined ? "" : `, got ${JSON.stringify(value)}`}`);
  return found;
}

function integerField(body: Record<string, unknown>, field: string, required: boolean): number {
  const value = body[field];
  if (value === undefined && !required) return 0;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw invalid(field, `must be a non-negative integer${value === undefined ? " and is required" : ""}`);
  return value;
}

/** `{"operation","width","height","size","quality","seconds"}` -> QuoteRequest, each bad field named. */
export function quoteRequestOf(body: unknown) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw reasonError(Code.InvalidArgument, "invalid_request", "send a JSON object: {\"operation\":\"matting\",\"width\":..,\"height\":..}");
  const fields = body as Record<string, unknown>;
  const seconds = fields.seconds;
  if (seconds !== undefined && (typeof seconds !== "number" || !Number.isFinite(seconds))) throw invalid("seconds", "must be a number of seconds");
  return create(QuoteRequestSchema, {
    operation: oneOf(QUOTE_OPERATIONS, fields.operation, "operation"),
    width: integerField(fields, "width", true),
    height: integerField(fields, "height", true),
    size: fields.size === undefined ? QuoteSize.FULL : oneOf(QUOTE_SIZES, fields.size, "size"),
    quality: integerField(fields, "quality", false),
    seconds: (seconds as number | undefined) ?? 0,
  });
}

const isoOf = (timestamp: Timestamp | undefined) => (timestamp ? timestampDate(timestamp).toISOString() : null);

/** Usage as CSV: one row per UTC day, API key and member. */
export function usageCsv(usage: ListUsageResponse): string {
  const quote = (value: string) => (/[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value);
  const lines = ["date,api_key_id,member_id,calls,credits"];
  for (const row of usage.rows) lines.push([row.date, quote(row.apiKeyId), quote(row.memberId), String(row.calls), String(creditsNumber(row.capturedMillicredits))].join(","));
  return `${lines.join("\r\n")}\r\n`;
}

/** Usage as JSON: the rows, and their sums per day, per API key and per member. */
export function usageJson(usage: ListUsageResponse) {
  const sum = (key: (row: ListUsageResponse["rows"][number]) => string) => {
    const totals = new Map<string, { calls: bigint; millicredits: bigint }>();
    for (const row of usage.rows) {
      const total = totals.get(key(row)) ?? { calls: 0n, millicredits: 0n };
      total.calls += row.calls;
      total.millicredits += row.capturedMillicredits;
      totals.set(key(row), total);
    }
    return [...totals].map(([name, total]) => ({ name, calls: Number(total.calls), credits: creditsNumber(total.millicredits) }));
  };
  return {
    cycle: { started_at: isoOf(usage.cycleStartedAt), ends_at: isoOf(usage.cycleEndsAt), calls: Number(usage.cycleCalls), monthly_calls_max: Number(usage.monthlyCallsMax) },
    days: sum((row) => row.date).map(({ name, ...total }) => ({ date: name, ...total })),
    api_keys: sum((row) => row.apiKeyId).map(({ name, ...total }) => ({ api_key_id: name, ...total })),
    members: sum((row) => row.memberId).map(({ name, ...total }) => ({ member_id: name, ...total })),
    rows: usage.rows.map((row) => ({ date: row.date, api_key_id: row.apiKeyId, member_id: row.memberId, calls: Number(row.calls), credits: creditsNumber(row.capturedMillicredits) })),
  };
}

const JSON_BODY = /^application\/json\s*(;|$)/i;

/** Prices a call from the operation's own body (matting.routes.ts quoteUpload). */
export type UploadQuoter = (request: HttpRequest, response: HttpResponse, owner: ApiKeyOwner) => Promise<{ costMillicredits: bigint; priceBookVersion: string }>;

/** The account routes; each authenticates by API key and reads only the caller's own account. */
export function accountRoutes(apiKeys: ApiKeyStore, reads: AccountReads, quoteUpload: UploadQuoter): RestRoute[] {
  return [
    {
      method: "POST",
      path: "/v1/quote",
      async handle(request, response) {
        const headers = headersOf(request);
        const owner = await authenticate(apiKeys, headers);
        // JSON names the sizes; any other body is the operation's own (a form, an image, image_url).
        const quote = JSON_BODY.test(headers.get("content-type") ?? "")
          ? await reads.quote(owner, quoteRequestOf(await readJson(request, QUOTE_BODY_BYTES_MAX)))
          : await quoteUpload(request, response, owner);
        writeJson(response, 200, { credits: creditsNumber(quote.costMillicredits), price_book_version: quote.priceBookVersion });
      },
    },
    {
      method: "GET",
      path: "/v1/credit/balance",
      async handle(request, response) {
        const balance = await reads.balance(await authenticate(apiKeys, headersOf(request)));
        writeJson(response, 200, {
          available_credits: creditsNumber(balance.availableMillicredits),
          held_credits: creditsNumber(balance.heldMillicredits),
          buckets: balance.buckets.map((bucket) => ({
            id: bucket.id,
            kind: bucket.kind,
            granted_credits: creditsNumber(bucket.grantedMillicredits),
            remaining_credits: creditsNumber(bucket.remainingMillicredits),
            held_credits: creditsNumber(bucket.heldMillicredits),
            expires_at: isoOf(bucket.expiresAt),
          })),
          affordable: balance.affordable.map((row) => ({ operation: row.operation, description: row.description, count: Number(row.count) })),
        });
      },
    },
    {
      method: "GET",
      path: "/v1/usage",
      async handle(request, response) {
        const usage = await reads.usage(await authenticate(apiKeys, headersOf(request)));
        if (/\btext\/csv\b/i.test(request.headers.accept ?? "")) {
          const csv = usageCsv(usage);
          response.writeHead(200, { "content-type": "text/csv; charset=utf-8", "content-length": String(Buffer.byteLength(csv)), "content-disposition": 'attachment; filename="usage.csv"' });
          response.end(csv);
          return;
        }
        writeJson(response, 200, usageJson(usage));
      },
    },
  ];
}

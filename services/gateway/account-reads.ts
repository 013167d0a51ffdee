// What a caller may read about its own account: the exact cost of an operation (Quote), the
// balance, and usage. Shared by the REST routes (account.routes.ts) and the typed RPCs
// (account.handlers.ts), so both answer the same figures. Every read takes one token of the
// account's read budget (READ_REQUESTS_PER_MINUTE), separate from its operations' rate.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { reasonError } from "../common/errors.ts";
import { BillingService, Operation, Pool, type Account } from "../common/gen/cutline/billing/v1/billing_service_pb.ts";
import {
  GetBalanceResponseSchema,
  ListUsageResponseSchema,
  QuoteOperation,
  QuoteResponseSchema,
  QuoteSize,
  type GetBalanceResponse,
  type ListUsageResponse,
  type QuoteRequest,
  type QuoteResponse,
} from "../common/gen/cutline/gateway/v1/account_service_pb.ts";
import type { LongestSideLimits } from "../common/images/image-limits.ts";
import { longestSideFor, processedSize } from "../common/images/image-size.ts";
import { RequestRateLimiter } from "./domain/rate-limits.ts";
import type { ApiKeyOwner } from "./store/api-key.store.ts";
import type { MonthlyCallStore } from "./store/monthly-call.store.ts";

export interface AccountReadsOptions {
  /** The longest sides inference processes at, so a quote prices the size a call would. */
  longestSide: LongestSideLimits;
  /** Reads (quote, balance, usage) per account per minute; 0 for no limit. @default 600 requests */
  readRequestsPerMinute?: number;
}

/** Longest side accepted in a quote, in pixels: far past any plan's, so only nonsense is refused here. */
const QUOTE_SIDE_PIXELS_MAX = 100_000;
/** Longest video a quote prices, in seconds (billing's price book refuses longer ones by its own limit). */
const QUOTE_SECONDS_MAX = 24 * 60 * 60;

/** Public names of billing's operations, as REST and AccountService.GetBalance show them. */
export const OPERATION_NAMES: Readonly<Partial<Record<Operation, string>>> = {
  [Operation.REMOVE_BACKGROUND]: "matting",
  [Operation.SMART_CROP]: "smart_crop",
  [Operation.UPSCALE]: "upscale",
  [Operation.VIDEO_REMOVE_BACKGROUND]: "video_matting",
};

function invalid(field: string, message: string) {
  return reasonError(Code.InvalidArgument, "invalid_option", `${field}: ${message}`);
}

export class AccountReads {
  readonly #reads: RequestRateLimiter;

  constructor(
    private readonly billing: Client<typeof BillingService>,
    private readonly monthlyCalls: MonthlyCallStore,
    private readonly options: AccountReadsOptions,
  ) {
    this.#reads = new RequestRateLimiter({
      limit: "read_requests_per_minute",
      message: (perMinute, seconds) => `account reads (quote, balance, usage) are limited to ${perMinute} per minute per account (READ_REQUESTS_PER_MINUTE); retry in ${seconds} s`,
    });
  }

  #takeReadToken(owner: ApiKeyOwner): void {
    const rate = this.#reads.take(owner.accountId, this.options.readRequestsPerMinute ?? 600, Date.now());
    if (!rate.ok) {
      throw reasonError(Code.ResourceExhausted, "read_rate_limited", rate.message, { metadata: { "retry-after": String(Math.ceil(rate.retryAfterMs / 1000)) } });
    }
  }

  async #account(owner: ApiKeyOwner): Promise<Account> {
    const { account } = await this.billing.getAccount({ accountId: owner.accountId });
    if (!account) throw reasonError(Code.NotFound, "account_not_found", `no account ${owner.accountId}`);
    return account;
  }

  /** The exact cost, priced like the call itself: the same size after the plan's and the service's downscaling. */
  async quote(owner: ApiKeyOwner, request: QuoteRequest): Promise<QuoteResponse> {
    this.#takeReadToken(owner);
    for (const side of ["width", "height"] as const) {
      const value = request[side];
      if (!Number.isInteger(value) || value < 1 || value > QUOTE_SIDE_PIXELS_MAX) throw invalid(side, `must be an integer from 1 to ${QUOTE_SIDE_PIXELS_MAX} pixels`);
    }
    if (request.quality !== 0 && (request.quality < 1 || request.quality > 100)) throw invalid("quality", "must be an integer from 1 to 100");
    const hd = request.size === QuoteSize.HD;
    switch (request.operation) {
      // Both images are priced at the size inference processes, as the call itself is (image-jobs.ts).
      case QuoteOperation.MATTING:
      case QuoteOperation.SMART_CROP: {
        const plan = (await this.#account(owner)).plan;
        const longestSideMax = longestSideFor(hd, this.options.longestSide, plan?.longestSidePixels ?? 0);
        const processed = processedSize(request.width, request.height, longestSideMax);
        const operation = request.operation === QuoteOperation.SMART_CROP ? Operation.SMART_CROP : Operation.REMOVE_BACKGROUND;
        return this.#price(owner, { operation, pixels: processed.width * processed.height, hd });
      }
      case QuoteOperation.VIDEO_MATTING: {
        if (!(request.seconds > 0 && request.seconds <= QUOTE_SECONDS_MAX)) throw invalid("seconds", `must be a number of seconds above 0 and at most ${QUOTE_SECONDS_MAX}`);
        const videoMilliseconds = Math.ceil(request.seconds * 1000);
        return this.#price(owner, { operation: Operation.VIDEO_REMOVE_BACKGROUND, pixels: request.width * request.height, hd, videoMilliseconds });
      }
      default:
        throw invalid("operation", "must be one of matting, smart_crop, video_matting");
    }
  }

  async #price(owner: ApiKeyOwner, request: { operation: Operation; pixels: number; hd: boolean; videoMilliseconds?: number }): Promise<QuoteResponse> {
    const quote = await this.billing.quote({ accountId: owner.accountId, ...request, pixels: BigInt(request.pixels) });
    return create(QuoteResponseSchema, { costMillicredits: quote.costMillicredits, priceBookVersion: quote.priceBookVersion });
  }

  /** API credits: available, held, each live bucket with its expiry, and what the balance buys. */
  async balance(owner: ApiKeyOwner): Promise<GetBalanceResponse> {
    this.#takeReadToken(owner);
    const balance = await this.billing.getBalance({ accountId: owner.accountId, pool: Pool.API });
    return create(GetBalanceResponseSchema, {
      availableMillicredits: balance.availableMillicredits,
      heldMillicredits: balance.heldMillicredits,
      buckets: balance.buckets.map((bucket) => ({
        id: bucket.id,
        kind: bucket.kind,
        grantedMillicredits: bucket.grantedMillicredits,
        remainingMillicredits: bucket.remainingMillicredits,
        heldMillicredits: bucket.heldMillicredits,
        expiresAt: bucket.expiresAt,
      })),
      affordable: balance.affordable.map((row) => ({ operation: OPERATION_NAMES[row.operation] ?? Operation[row.operation].toLowerCase(), description: row.description, count: row.count })),
    });
  }

  /** The account's plan code (Photoroom's /v2/account `plan`); read after `balance`, whose read token covers it. */
  async planCode(owner: ApiKeyOwner): Promise<string> {
    return (await this.#account(owner)).plan?.code ?? "";
  }

  /** The current cycle's captured usage per UTC day, API key and member, and its calls against the monthly quota. */
  async usage(owner: ApiKeyOwner): Promise<ListUsageResponse> {
    this.#takeReadToken(owner);
    const account = await this.#account(owner);
    const usage = await this.billing.listUsage({ accountId: owner.accountId, pool: Pool.API, pageSize: 1 });
    const cycleStartedAt = account.cycleStartedAt ? timestampDate(account.cycleStartedAt) : new Date(0);
    return create(ListUsageResponseSchema, {
      cycleStartedAt: timestampFromDate(cycleStartedAt),
      cycleEndsAt: account.nextRenewalAt,
      rows: usage.days.map((day) => ({ date: day.date, apiKeyId: day.apiKeyId, memberId: day.memberId, calls: day.calls, capturedMillicredits: day.capturedMillicredits })),
      cycleCalls: BigInt(await this.monthlyCalls.count(owner.accountId, cycleStartedAt)),
      monthlyCallsMax: account.plan?.monthlyCalls ?? 0n,
    });
  }
}

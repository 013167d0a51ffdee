// Outbound HTTP for every service that fetches a URL a client gave us (webhooks; image_url and
// bg_image_url). Such a URL must not reach into our own network: a target that resolves to a
// private, loopback, link-local, unique-local, CGNAT, multicast or otherwise non-public address is
// refused. The address is checked where the socket connects (the agent's DNS lookup), not before
// the request: a name that resolves to a public address for a check and to 10.0.0.1 for the
// connection (DNS rebinding) still meets the check. Redirects are followed here, one hop at a
// time, each re-checked; bodies and time are limited.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { Agent, request, type Dispatcher } from "undici";
import { Code } from "@connectrpc/connect";
import { boolean, integer } from "./config.loader.ts";
import { reasonError } from "./errors.ts";

export const outboundConfigSpec = {
  CUTLINE_OUTBOUND_ALLOW_LOOPBACK: boolean(
    "Let outbound fetches (webhooks, image_url) reach loopback addresses (127.0.0.0/8, ::1), for tests and one-machine setups; private, link-local and other internal addresses stay refused.",
    false,
  ),
  OUTBOUND_TIMEOUT_MS: integer("Time an outbound fetch (webhook, image_url) may take in all, redirects and body included, in milliseconds.", 10_000, { min: 100, max: 600_000 }),
  OUTBOUND_BYTES_MAX: integer("Largest response body an outbound fetch reads, in bytes; past it the fetch is aborted.", 25 * 1024 * 1024, { min: 1 }),
} as const;

/** Redirects followed before a fetch fails with outbound_too_many_redirects. */
export const OUTBOUND_REDIRECTS_MAX = 5;
/** Longest URL accepted for an outbound fetch, in characters. */
export const OUTBOUND_URL_LENGTH_MAX = 2048;

export type OutboundFailureReason =
  | "outbound_invalid_url"
  | "outbound_forbidden_address"
  | "outbound_too_many_redirects"
  | "outbound_too_large"
  | "outbound_timeout"
  | "outbound_failed";

/** A fetch that did not get a whole response: one stable reason each, and a message naming the limit. */
export class OutboundError extends Error {
  constructor(
    readonly reason: OutboundFailureReason,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
    this.name = "OutboundError";
  }
}

export interface OutboundPolicy {
  /** Let loopback addresses through (and only those of the internal ranges). @default false */
  allowLoopback: boolean;
  /** Default total time of one fetch, in milliseconds. */
  timeoutMs: number;
  /** Default largest response body, in bytes. */
  bytesMax: number;
}

export function outboundPolicyOf(config: { CUTLINE_OUTBOUND_ALLOW_LOOPBACK: boolean; OUTBOUND_TIMEOUT_MS: number; OUTBOUND_BYTES_MAX: number }): OutboundPolicy {
  return { allowLoopback: config.CUTLINE_OUTBOUND_ALLOW_LOOPBACK, timeoutMs: config.OUTBOUND_TIMEOUT_MS, bytesMax: config.OUTBOUND_BYTES_MAX };
}

export interface OutboundRequest {
  /** @default "GET" */
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Largest response body read, in bytes; @default the policy's bytesMax */
  bytesMax?: number;
  /** What the refusal past bytesMax names as the limit (an image fetch's is its plan's or UPLOAD_BYTES_MAX); @default "OUTBOUND_BYTES_MAX" */
  bytesLimitName?: string;
  /** Total time for every hop and the body, in milliseconds; @default the policy's timeoutMs */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** "discard": the body is not read (a webhook receiver's answer); @default "read" */
  responseBody?: "read" | "discard";
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
  /** The URL that answered, after redirects. */
  url: string;
  redirects: number;
}

/** Why an address is refused, or undefined when it is a public unicast one (or loopback where allowed). */
export function forbiddenRangeOf(address: string, policy: Pick<OutboundPolicy, "allowLoopback">): string | undefined {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return "unparseable";
  }
  // ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address it carries.
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  const range = parsed.range();
  if (range === "unicast") return undefined;
  if (range === "loopback" && policy.allowLoopback) return undefined;
  return range;
}

/** The URL if it is one we may fetch (http or https, not too long), else outbound_invalid_url naming the problem. */
export function parseOutboundUrl(raw: string | URL, what = "the URL"): URL {
  const text = String(raw);
  if (text.length > OUTBOUND_URL_LENGTH_MAX) {
    throw new OutboundError("outbound_invalid_url", `${what} is ${text.length} characters; the limit is ${OUTBOUND_URL_LENGTH_MAX}`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new OutboundError("outbound_invalid_url", `${what} is not an absolute URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OutboundError("outbound_invalid_url", `${what} must be http or https, not ${url.protocol.replace(/:$/, "")}`);
  }
  if (url.username || url.password) throw new OutboundError("outbound_invalid_url", `${what} must not carry a user name or password`);
  return url;
}

/** Refuses a URL whose host is a literal address in a forbidden range (names are checked when they resolve). */
export function checkLiteralAddress(url: URL, policy: Pick<OutboundPolicy, "allowLoopback">): void {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) === 0) return;
  const range = forbiddenRangeOf(host, policy);
  if (range) throw forbidden(url.host, host, range, policy);
}

/**
 * A client's webhook URL, normalised: http or https, at most OUTBOUND_URL_LENGTH_MAX characters,
 * no credentials, and (with a policy) not a literal internal address; else INVALID_ARGUMENT with
 * reason invalid_webhook_url. Names are judged when a delivery connects.
 */
export function checkedWebhookUrl(raw: string, policy?: Pick<OutboundPolicy, "allowLoopback">, field = "webhook_url"): string {
  try {
    const url = parseOutboundUrl(raw, field);
    if (policy) checkLiteralAddress(url, policy);
    return url.toString();
  } catch (error) {
    if (!(error instanceof OutboundError)) throw error;
    throw reasonError(Code.InvalidArgument, "invalid_webhook_url", `${field}: ${error.message}`);
  }
}

function forbidden(host: string, address: string, range: string, policy: Pick<OutboundPolicy, "allowLoopback">): OutboundError {
  const hint = range === "loopback" ? " (CUTLINE_OUTBOUND_ALLOW_LOOPBACK=true allows loopback)" : "";
  const allowed = policy.allowLoopback ? "public or loopback" : "public";
  return new OutboundError("outbound_forbidden_address", `${host} resolves to ${address}, a ${range} address; outbound fetches may reach ${allowed} addresses only${hint}`);
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A DNS lookup for the agent's sockets that keeps only the addresses the policy allows. */
function guardedLookup(policy: Pick<OutboundPolicy, "allowLoopback">) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      const allowed = addresses.filter((entry) => forbiddenRangeOf(entry.address, policy) === undefined);
      if (allowed.length === 0) {
        const first = addresses[0];
        const refusal = first
          ? forbidden(hostname, first.address, forbiddenRangeOf(first.address, policy) ?? "forbidden", policy)
          : new OutboundError("outbound_failed", `${hostname} has no address`);
        return callback(refusal as unknown as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, allowed);
      callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Dropped when a redirect leaves the origin, as browsers do.
const ORIGIN_BOUND_HEADERS = ["authorization", "cookie", "proxy-authorization"];

export interface OutboundFetcher {
  /** Fetches `url` under the policy; a non-2xx answer is returned, not thrown. Throws OutboundError. */
  fetchOutbound(url: string | URL, request?: OutboundRequest): Promise<OutboundResponse>;
  close(): Promise<void>;
}

export function createOutboundFetcher(policy: OutboundPolicy): OutboundFetcher {
  const agent = new Agent({ connect: { lookup: guardedLookup(policy) as never }, keepAliveTimeout: 4000 });
  return {
    fetchOutbound: (url, options = {}) => fetchWith(agent, policy, url, options),
    close: () => agent.close(),
  };
}

async function fetchWith(agent: Dispatcher, policy: OutboundPolicy, rawUrl: string | URL, options: OutboundRequest): Promise<OutboundResponse> {
  const timeoutMs = options.timeoutMs ?? policy.timeoutMs;
  const bytesMax = options.bytesMax ?? policy.bytesMax;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let url = parseOutboundUrl(rawUrl);
  let method = (options.method ?? "GET").toUpperCase();
  let body = options.body;
  let headers = { ...options.headers };
  for (let redirects = 0; ; redirects += 1) {
    checkLiteralAddress(url, policy);
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, { dispatcher: agent, method: method as Dispatcher.HttpMethod, headers, body, signal });
    } catch (error) {
      throw failureOf(error, { url, timeoutMs, timeout, caller: options.signal });
    }
    const location = response.headers.location;
    if (!REDIRECT_STATUSES.has(response.statusCode) || typeof location !== "string") {
      const data =
        options.responseBody === "discard"
          ? await discard(response)
          : await readLimited(response, { bytesMax, bytesLimitName: options.bytesLimitName ?? "OUTBOUND_BYTES_MAX", url, timeoutMs, timeout, caller: options.signal });
      return { status: response.statusCode, headers: response.headers, body: data, url: url.toString(), redirects };
    }
    await discard(response);
    if (redirects >= OUTBOUND_REDIRECTS_MAX) {
      throw new OutboundError("outbound_too_many_redirects", `${url.host} redirected more than ${OUTBOUND_REDIRECTS_MAX} times (OUTBOUND_REDIRECTS_MAX)`);
    }
    const next = parseOutboundUrl(new URL(location, url), "a redirect's Location");
    // 303, and 301/302 after a POST, continue as GET without the body (as fetch does).
    if (response.statusCode === 303 || ((response.statusCode === 301 || response.statusCode === 302) && method === "POST")) {
      method = method === "HEAD" ? "HEAD" : "GET";
      body = undefined;
      headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !/^content-/i.test(name)));
    }
    if (next.origin !== url.origin) headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !ORIGIN_BOUND_HEADERS.includes(name.toLowerCase())));
    url = next;
  }
}

async function discard(response: Dispatcher.ResponseData): Promise<Uint8Array> {
  // Destroying (rather than draining) closes the socket at once: a huge or endless body costs nothing.
  response.body.on("error", () => undefined); // the destroy's own AbortError, nobody's concern
  response.body.destroy();
  return new Uint8Array();
}

interface FailureContext {
  url: URL;
  timeoutMs: number;
  timeout: AbortSignal;
  caller: AbortSignal | undefined;
}

/** The body, read as it streams in and abandoned (the socket destroyed) the moment it passes bytesMax: never buffered past the limit. */
async function readLimited(response: Dispatcher.ResponseData, context: FailureContext & { bytesMax: number; bytesLimitName: string }): Promise<Uint8Array> {
  const tooLarge = (bytes: string) =>
    new OutboundError("outbound_too_large", `the response from ${context.url.host} is ${bytes} bytes; the limit is ${context.bytesMax} bytes (${context.bytesLimitName})`);
  const declared = Number(response.headers["content-length"]);
  if (Number.isFinite(declared) && declared > context.bytesMax) {
    await discard(response);
    throw tooLarge(String(declared));
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      total += (chunk as Buffer).byteLength;
      if (total > context.bytesMax) {
        await discard(response);
        throw tooLarge(`more than ${context.bytesMax}`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    throw failureOf(error, context);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function failureOf(error: unknown, context: FailureContext): OutboundError {
  if (error instanceof OutboundError) return error;
  const cause = causeChain(error).find((entry) => entry instanceof OutboundError);
  if (cause) return cause as OutboundError;
  if (context.timeout.aborted && !context.caller?.aborted) {
    return new OutboundError("outbound_timeout", `${context.url.host} did not answer in full within ${context.timeoutMs} ms (OUTBOUND_TIMEOUT_MS)`, { cause: error });
  }
  const detail = causeChain(error)
    .map((entry) => (entry instanceof Error ? (((entry as NodeJS.ErrnoException).code ?? "") + " " + entry.message).trim() : String(entry)))
    .at(-1);
  return new OutboundError("outbound_failed", `fetching ${context.url.host} failed: ${detail ?? "unknown error"}`, { cause: error });
}

function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && chain.length < 8; current = current instanceof Error ? current.cause : undefined) chain.push(current);
  return chain;
}

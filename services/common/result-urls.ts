// Signed result URLs: `GET <public URL>/v1/results/<job id>?expires=<unix s>&signature=<hex>`.
// The gateway serves them and puts them in job JSON; the orchestrator puts them in webhooks. Both
// sign with CUTLINE_RESULT_URL_KEY, so a URL made by one verifies in the other; the link carries
// no API key, so it can be handed to a browser or a CDN, and it stops working when it expires.
import { createHmac, timingSafeEqual } from "node:crypto";
import { ConfigError, integer, optionalText, type Variable } from "./config.loader.ts";
import { keptSecretOf } from "./kept-secret.ts";

/** Shortest key accepted, in characters: 32 hex characters are 128 bits. */
export const RESULT_URL_KEY_LENGTH_MIN = 32;

export const resultUrlConfigSpec = {
  CUTLINE_PUBLIC_URL: optionalText("Base URL clients reach the gateway at (result URLs, webhooks), e.g. https://api.example.com; unset means the URL the gateway listens on."),
  CUTLINE_RESULT_URL_KEY: {
    description: `Secret (at least ${RESULT_URL_KEY_LENGTH_MIN} characters) that signs result URLs; the gateway and the orchestrator must share it. Unset in single-node mode means one generated and kept in $CUTLINE_DATA_DIR/result-url-key.`,
    defaultValue: undefined,
    secret: true,
    parse(raw: string) {
      if (raw.length < RESULT_URL_KEY_LENGTH_MIN) throw new Error(`must be at least ${RESULT_URL_KEY_LENGTH_MIN} characters`);
      return raw;
    },
  } satisfies Variable<string | undefined>,
  RESULT_URL_TTL_SECONDS: integer("How long a signed result URL works, in seconds.", 24 * 60 * 60, { min: 60, max: 7 * 24 * 60 * 60 }),
} as const;

/** The configured key, else (single node) the one kept in the data directory, created on first use. */
export function resultUrlKeyOf(config: { CUTLINE_RESULT_URL_KEY: string | undefined; CUTLINE_DATA_DIR: string }, options: { required: boolean }): string {
  if (config.CUTLINE_RESULT_URL_KEY) return config.CUTLINE_RESULT_URL_KEY;
  if (options.required) {
    throw new ConfigError([`CUTLINE_RESULT_URL_KEY is not set: the gateway and the orchestrator must share one (at least ${RESULT_URL_KEY_LENGTH_MIN} characters, e.g. openssl rand -hex 32)`]);
  }
  return keptSecretOf(config.CUTLINE_DATA_DIR, "result-url-key").secret;
}

export interface ResultUrlSigner {
  /** The absolute URL of a job's result, valid until `now + RESULT_URL_TTL_SECONDS`. */
  urlFor(jobId: string, now?: Date): string;
  /** Whether a request's `expires` and `signature` are this job's and still valid. */
  verify(jobId: string, expires: string | null, signature: string | null, now?: Date): ResultUrlCheck;
}

export type ResultUrlCheck = { ok: true } | { ok: false; reason: "result_url_expired" | "result_url_invalid" };

export function createResultUrlSigner(options: { key: string; publicUrl: string; ttlSeconds: number }): ResultUrlSigner {
  const base = options.publicUrl.replace(/\/+$/, "");
  const sign = (jobId: string, expires: number) => createHmac("sha256", options.key).update(`${jobId}.${expires}`).digest("hex");
  return {
    urlFor(jobId, now = new Date()) {
      const expires = Math.floor(now.getTime() / 1000) + options.ttlSeconds;
      return `${base}/v1/results/${encodeURIComponent(jobId)}?expires=${expires}&signature=${sign(jobId, expires)}`;
    },
    verify(jobId, expires, signature, now = new Date()) {
      if (!expires || !/^\d{1,12}$/.test(expires) || !signature || !/^[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: "result_url_invalid" };
      const expected = Buffer.from(sign(jobId, Number(expires)), "hex");
      if (!timingSafeEqual(expected, Buffer.from(signature, "hex"))) return { ok: false, reason: "result_url_invalid" };
      // Checked after the signature, so an expiry only reads as expired on a URL we made.
      if (Number(expires) * 1000 <= now.getTime()) return { ok: false, reason: "result_url_expired" };
      return { ok: true };
    },
  };
}

// Connection URLs carry passwords (postgres://user:password@host, nats://user:password@host) and
// NATS tokens (nats://token@host). Logs and configuration errors are read by people and shipped to
// log stores that are not secret stores, so credentials are replaced with "***" before either.

const REDACTED = "***";

// scheme://userinfo@ — the userinfo runs up to the last "@" before the host's "/", "?" or "#".
const URL_USERINFO = /([a-z][a-z\d+.-]*:\/\/)([^\s/?#]*)@/gi;
// Schemes whose user name alone may be a secret: NATS accepts a token in its place.
const TOKEN_SCHEMES = /^(nats|tls|ws|wss):\/\/$/i;

/** Every URL password (and NATS token) in `text` replaced with "***"; the rest left as it was. */
export function redactCredentials(text: string): string {
  if (!text.includes("@")) return text;
  return text.replace(URL_USERINFO, (match, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    if (colon !== -1) return `${scheme}${userinfo.slice(0, colon)}:${REDACTED}@`;
    return TOKEN_SCHEMES.test(scheme) ? `${scheme}${REDACTED}@` : match;
  });
}

/**
 * For a value meant to be a URL (or a comma-separated list of them), also when it is too broken
 * to parse: whatever sits between "://" and the last "@" is hidden, since a password with an
 * unescaped "/" or "#" defeats the pattern above.
 */
export function redactUrl(value: string): string {
  const redacted = redactCredentials(value);
  const at = redacted.lastIndexOf("@");
  const scheme = redacted.indexOf("://");
  if (at === -1 || scheme === -1 || at < scheme) return redacted;
  const userinfo = redacted.slice(scheme + 3, at);
  if (userinfo.endsWith(`:${REDACTED}`) || userinfo === REDACTED || !/[:/#?]/.test(userinfo)) return redacted;
  return `${redacted.slice(0, scheme + 3)}${REDACTED}${redacted.slice(at)}`;
}

/** `value` with credentials redacted in its strings, errors and nested fields (3 levels); the same object when nothing changed. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactCredentials(value);
  if (value === null || typeof value !== "object" || depth > 3) return value;
  if (value instanceof Error) {
    const message = redactCredentials(value.message);
    const stack = value.stack === undefined ? undefined : redactCredentials(value.stack);
    const cause = redactValue((value as { cause?: unknown }).cause, depth + 1);
    if (message === value.message && stack === value.stack && cause === (value as { cause?: unknown }).cause) return value;
    const copy = Object.assign(Object.create(Object.getPrototypeOf(value) as object) as Error, value);
    Object.defineProperties(copy, {
      message: { value: message, enumerable: false, writable: true, configurable: true },
      stack: { value: stack, enumerable: false, writable: true, configurable: true },
      cause: { value: cause, enumerable: false, writable: true, configurable: true },
    });
    return copy;
  }
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null && !Array.isArray(value)) return value;
  let changed = false;
  const entries = Object.entries(value).map(([key, field]) => {
    const redacted = redactValue(field, depth + 1);
    if (redacted !== field) changed = true;
    return [key, redacted] as const;
  });
  if (!changed) return value;
  return Array.isArray(value) ? entries.map(([, field]) => field) : Object.fromEntries(entries);
}

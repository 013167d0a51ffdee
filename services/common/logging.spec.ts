// Logs never carry the password or token inside DATABASE_URL / NATS_URL, whether the URL is a
// logged field, part of the message, or quoted by an error.
import assert from "node:assert/strict";
import { test } from "node:test";
import { redactCredentials } from "./credentials.ts";
import { createLogger } from "./logging.ts";

function captured() {
  const lines: string[] = [];
  return { lines, log: createLogger("test", "debug", { write: (line: string) => void lines.push(line) }) };
}

test("URL passwords and NATS tokens are written as *** in fields, messages and errors", () => {
  const { lines, log } = captured();
  log.info({ natsUrl: "nats://cutline:natspass@nats:4222,nats://cutline:natspass@nats-2:4222", nested: { url: "nats://t0ken@nats:4222" } }, "ports: NATS");
  log.warn("connecting to %s", "postgres://app:hunter2@db:5432/cutline");
  const cause = new Error("connect ECONNREFUSED postgres://app:hunter2@db:5432/cutline");
  log.error({ err: new Error("pool failed for postgres://app:hunter2@db:5432/cutline", { cause }) }, "database unreachable");
  const output = lines.join("");
  assert.doesNotMatch(output, /natspass|t0ken|hunter2/);
  assert.match(output, /nats:\/\/cutline:\*\*\*@nats:4222,nats:\/\/cutline:\*\*\*@nats-2:4222/);
  assert.match(output, /nats:\/\/\*\*\*@nats:4222/);
  assert.match(output, /connecting to postgres:\/\/app:\*\*\*@db:5432\/cutline/);
  const errorLine = JSON.parse(lines[2]!) as { err: { type: string; message: string; stack: string } };
  assert.equal(errorLine.err.type, "Error");
  // pino's serializer appends the cause's message: both redacted.
  assert.equal(errorLine.err.message, "pool failed for postgres://app:***@db:5432/cutline: connect ECONNREFUSED postgres://app:***@db:5432/cutline");
  assert.match(errorLine.err.stack, /app:\*\*\*@db/);
});

test("text without credentials is left exactly as it was", () => {
  for (const text of ["postgres://postgres@127.0.0.1:5432/test", "http://127.0.0.1:8080/v1/matting", "user@example.com wrote", "no url here"]) {
    assert.equal(redactCredentials(text), text);
  }
  assert.equal(redactCredentials("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, integer, loadConfig, oneOf, port, text, url } from "./config.loader.ts";

const spec = {
  PORT: port("port", 8080),
  WORKERS: integer("workers", 2, { min: 1, max: 8 }),
  MODE: oneOf("mode", ["a", "b"], "a"),
  NAME: text("name", "cutline"),
  DATABASE_URL: url("database"),
};

test("unset variables take their defaults", () => {
  assert.deepEqual(loadConfig(spec, {}), { PORT: 8080, WORKERS: 2, MODE: "a", NAME: "cutline", DATABASE_URL: undefined });
});

test("every bad variable is named in one error", () => {
  assert.throws(
    () => loadConfig(spec, { PORT: "abc", WORKERS: "9", MODE: "c", DATABASE_URL: "not a url" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 4);
      assert.match(error.message, /PORT="abc": expected an integer between 0 and 65535/);
      assert.match(error.message, /WORKERS="9": expected an integer between 1 and 8/);
      assert.match(error.message, /MODE="c": expected one of a, b/);
      assert.match(error.message, /DATABASE_URL="not a url"/);
      return true;
    },
  );
});

test("a bad DATABASE_URL or NATS_URL is reported without its password or token", () => {
  const spec = { DATABASE_URL: url("db"), NATS_URL: url("nats"), PORT: port("port", 1) };
  const error = (() => {
    try {
      loadConfig(spec, { DATABASE_URL: "postgres://app:hunter2@db:notaport/cutline", NATS_URL: "nats://s3cr3tt0ken@nats:99999", PORT: "x" });
    } catch (caught) {
      return caught as ConfigError;
    }
    throw new Error("expected a ConfigError");
  })();
  assert.ok(error instanceof ConfigError);
  assert.doesNotMatch(error.message, /hunter2|s3cr3tt0ken/);
  assert.match(error.message, /DATABASE_URL="postgres:\/\/app:\*\*\*@db:notaport\/cutline"/);
  assert.match(error.message, /NATS_URL="nats:\/\/\*\*\*@nats:99999"/);
  // A password with an unescaped "/" defeats URL parsing; it is hidden all the same.
  assert.throws(() => loadConfig({ DATABASE_URL: url("db") }, { DATABASE_URL: "postgres://app:pa/ss#word@db:x/c" }), (thrown: ConfigError) => {
    assert.doesNotMatch(thrown.message, /pa\/ss|word@/);
    assert.match(thrown.message, /postgres:\/\/\*\*\*@db:x\/c/);
    return true;
  });
});

test("a secret variable is reported by its length only", () => {
  const token = { ...text("token", ""), secret: true, parse: (raw: string) => { if (raw.length < 32) throw new Error("expected at least 32 characters"); return raw; } };
  assert.throws(() => loadConfig({ TOKEN: token }, { TOKEN: "short-secret" }), (thrown: ConfigError) => {
    assert.doesNotMatch(thrown.message, /short-secret/);
    assert.match(thrown.message, /TOKEN=<secret, 12 characters>: expected at least 32 characters/);
    return true;
  });
});

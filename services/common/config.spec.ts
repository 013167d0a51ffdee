import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, integer, loadConfig, oneOf, port, text, url } from "./config.ts";

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

import { integer, oneOf, text, url } from "./config.ts";
import { serviceTokenVariable } from "./service-auth.ts";

/** Variables every service reads. Spread into each service's own spec. */
export const commonConfigSpec = {
  HOST: text("Address to listen on; 0.0.0.0 in containers.", "127.0.0.1"),
  LOG_LEVEL: oneOf("pino log level.", ["fatal", "error", "warn", "info", "debug", "trace", "silent"], "info"),
  CUTLINE_DATA_DIR: text("Directory for embedded Postgres (PGlite), queue and blob files in single-node mode.", "./.data"),
  DATABASE_URL: url("Postgres URL; unset means embedded PGlite under CUTLINE_DATA_DIR."),
  NATS_URL: url("NATS (JetStream) URL; unset means in-process queue, events and blobs under CUTLINE_DATA_DIR."),
  NATS_NAME_PREFIX: text("Prefix of the JetStream streams, consumers and buckets.", "cutline"),
  SHUTDOWN_TIMEOUT_MS: integer("After SIGTERM, milliseconds given to in-flight work before exit.", 10_000, { min: 0, max: 600_000 }),
  BLOB_TTL_MS: integer("How long inputs and results are kept, in milliseconds.", 24 * 60 * 60 * 1000, { min: 1000 }),
  CUTLINE_SERVICE_TOKEN: serviceTokenVariable(
    "Shared secret (at least 32 characters) that services send and check on every internal call; a service started on its own (mesh mode) refuses to start without it. Single-node mode needs none.",
  ),
} as const;

/** URLs of the other services (mesh mode only; single-node mode wires them in memory). */
export const clientConfigSpec = {
  BILLING_URL: text("Billing service URL (mesh mode).", "http://127.0.0.1:8081"),
  ORCHESTRATOR_URL: text("Orchestrator service URL (mesh mode).", "http://127.0.0.1:8082"),
  INFERENCE_URL: text("Inference service URL (mesh mode).", "http://127.0.0.1:8083"),
  SERVICE_CALL_TIMEOUT_MS: integer("Deadline of each unary call to another service (mesh mode), in milliseconds; a hung peer fails it with DEADLINE_EXCEEDED.", 10_000, {
    min: 100,
    max: 600_000,
  }),
  SERVICE_STREAM_TIMEOUT_MS: integer("Deadline of a server stream from another service (WatchJob; mesh mode), in milliseconds; longer than any job runs.", 3_600_000, {
    min: 1000,
  }),
} as const;


import { boolean, integer, oneOf, optionalText, portOrOff, text, url } from "./config.loader.ts";
import { serviceTokenVariable } from "./service-auth.ts";
import { tracingConfigSpec } from "./tracing.ts";

/** Variables every service reads. Spread into each service's own spec. */
export const commonConfigSpec = {
  HOST: text("Address to listen on; 0.0.0.0 in containers.", "127.0.0.1"),
  LOG_LEVEL: oneOf("pino log level.", ["fatal", "error", "warn", "info", "debug", "trace", "silent"], "info"),
  CUTLINE_DATA_DIR: text("Directory for embedded Postgres (PGlite), queue and blob files in single-node mode, and for the inference engine's edited-model cache.", "./.data"),
  DATABASE_URL: url("Postgres URL; unset means embedded PGlite under CUTLINE_DATA_DIR."),
  NATS_URL: url("NATS (JetStream) URL; unset means in-process queue, events and blobs under CUTLINE_DATA_DIR."),
  NATS_NAME_PREFIX: text("Prefix of the JetStream streams, consumers and buckets.", "cutline"),
  NATS_USER: optionalText("User on the NATS server (the account's user in k8s/nats), sent with NATS_PASSWORD; unset connects without credentials."),
  NATS_PASSWORD: { ...optionalText("Password of NATS_USER."), secret: true },
  NATS_REPLICAS: integer(
    "Copies JetStream keeps of every stream, consumer and bucket this service creates (1, 3 or 5); 3 in a 3-node JetStream cluster so one node may fail, 1 for a single server, which refuses more.",
    1,
    { min: 1, max: 5 },
  ),
  SHUTDOWN_TIMEOUT_MS: integer("After SIGTERM, milliseconds given to in-flight work before exit.", 10_000, { min: 0, max: 600_000 }),
  JOB_RETRY_MAX: integer(
    "Retries of a job's task after a server fault, with a doubling delay (JOB_RETRY_DELAY_MS_MIN..MAX); the work queue delivers a task at most JOB_RETRY_MAX + 1 times, then the job fails with the fault's reason and its credits are returned. User errors are never retried.",
    4,
    { min: 0, max: 20 },
  ),
  BLOB_TTL_MS: integer("How long inputs and results are kept, in milliseconds.", 24 * 60 * 60 * 1000, { min: 1000 }),
  METRICS_PORT: portOrOff("Port of the Prometheus `GET /metrics` server (metrics only, never on PORT); 0 picks a free port, `off` disables it.", 9464),
  HTTP_HEADERS_TIMEOUT_MS: integer("Time a client has to send a request's headers (and a new connection its first byte), in milliseconds; then 408 and close.", 20_000, { min: 100, max: 600_000 }),
  HTTP_REQUEST_TIMEOUT_MS: integer(
    "Time a client has to send a whole request, body included, in milliseconds (the largest upload on a slow link); responses and server streams are not limited by it.",
    600_000,
    { min: 100, max: 3_600_000 },
  ),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: integer("Time an idle HTTP/1.1 connection is kept open, in milliseconds; above the 60 s idle timeout of common proxies.", 65_000, { min: 100, max: 600_000 }),
  HTTP2_IDLE_TIMEOUT_MS: integer("Time an HTTP/2 connection with no open stream is kept open, in milliseconds; then GOAWAY.", 120_000, { min: 100, max: 3_600_000 }),
  HTTP_HEADER_BYTES_MAX: integer("Largest request header block, in bytes; past it 431 (HTTP/1.1) or a stream reset (HTTP/2).", 16_384, { min: 1024, max: 1_048_576 }),
  CUTLINE_SERVICE_TOKEN: serviceTokenVariable(
    "Shared secret (at least 32 characters) that services send and check on every internal call; a service started on its own (mesh mode) refuses to start without it. Single-node mode needs none.",
  ),
  ...tracingConfigSpec,
} as const;

/** Variables of the services that keep a database (gateway, billing, orchestrator). */
export const databaseConfigSpec = {
  MIGRATE_ON_START: boolean(
    "Run this service's pending database migrations at start. false when a pre-deploy job runs `npm run migrate` (services/migrate.ts): a service whose schema is behind then refuses to start, naming the missing migration.",
    true,
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


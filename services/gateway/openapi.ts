// The OpenAPI 3.1 document of the gateway's REST API, served at GET /openapi.json and rendered
// at GET /docs. test/public-api.spec.ts holds it in sync with the route table: every route the
// gateway serves is documented, and every documented route is served.
//
// Credits are JSON numbers of credits with at most three decimals (1.3), formatted exactly from
// the ledger's integer millicredits.

type JsonSchema = {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean" | "null" | ("object" | "string" | "null" | "number" | "integer")[];
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: (string | number | null)[];
  format?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  default?: unknown;
  examples?: unknown[];
  additionalProperties?: boolean | JsonSchema;
  oneOf?: JsonSchema[];
  $ref?: string;
};

interface MediaType {
  schema: JsonSchema;
  example?: unknown;
}

interface Response {
  description: string;
  headers?: Record<string, { description: string; schema: JsonSchema }>;
  content?: Record<string, MediaType>;
}

interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  required?: boolean;
  description: string;
  schema: JsonSchema;
}

interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  security?: Record<string, string[]>[];
  parameters?: (Parameter | { $ref: string })[];
  requestBody?: { required?: boolean; content: Record<string, MediaType> };
  responses: Record<string, Response | { $ref: string }>;
}

type Method = "get" | "post" | "put" | "patch" | "delete";

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description: string; license: { name: string; identifier: string } };
  servers: { url: string; description: string }[];
  tags: { name: string; description: string }[];
  paths: Record<string, Partial<Record<Method, Operation>>>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, Response>;
    parameters: Record<string, Parameter>;
    securitySchemes: Record<string, { type: "apiKey"; in: "header"; name: string; description: string } | { type: "http"; scheme: "bearer"; description: string }>;
  };
  security: Record<string, string[]>[];
}

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (name: string) => ({ $ref: `#/components/responses/${name}` });
const json = (schema: JsonSchema, example?: unknown): Record<string, MediaType> => ({ "application/json": example === undefined ? { schema } : { schema, example } });
const credits = (description: string): JsonSchema => ({ type: "number", description: `${description}, in credits (at most three decimals)`, minimum: 0 });

/** The refusals every authenticated route may answer. */
const AUTHENTICATED_ERRORS = { "401": errorResponse("Unauthenticated"), "429": errorResponse("TooManyRequests"), "500": errorResponse("Internal") };

const IMAGE_HEADERS: Response["headers"] = {
  "X-Job-Id": { description: "The job that made the image.", schema: { type: "string" } },
  "X-Credits-Charged": { description: "Credits captured for this call (decimal credits).", schema: { type: "string", examples: ["0.25"] } },
  "X-Credits-Remaining": { description: "Credits available after the call (decimal credits).", schema: { type: "string" } },
  "X-Processing-Time-Ms": {
    description: "The worker's time on the job, from taking it to the result stored (model queue and inference included, X-Queue-Time-Ms before it not), in milliseconds.",
    schema: { type: "integer", minimum: 0 },
  },
  "X-Queue-Time-Ms": {
    description: "How long the job waited for the model: from its enqueue to a worker taking it, plus its wait in the worker's batch queue, in milliseconds.",
    schema: { type: "integer", minimum: 0 },
  },
  "X-Inference-Time-Ms": {
    description: "The engine's own work on the image (decode, model run, edge refinement, encoding), in milliseconds. The response's latency less this and X-Queue-Time-Ms is the service's overhead.",
    schema: { type: "integer", minimum: 0 },
  },
  "X-RateLimit-Limit": { description: "Requests per minute the plan allows.", schema: { type: "integer" } },
  "X-RateLimit-Remaining": { description: "Requests left in the current window.", schema: { type: "integer" } },
  "X-RateLimit-Reset": { description: "When the window resets, in Unix seconds.", schema: { type: "integer" } },
};

const IMAGE_OPTIONS: Record<string, JsonSchema> = {
  size: { type: "string", enum: ["preview", "small", "full", "auto", "hd"], default: "full", description: "Output size; hd is priced at the HD multiplier." },
  format: { type: "string", enum: ["png", "webp", "jpg", "jpeg", "mask"], default: "png" },
  output_format: { type: "string", enum: ["png", "webp", "jpg", "jpeg", "mask"], description: "Alias of format." },
  bg_color: { type: "string", description: "A background colour (hex, with or without #), or transparent." },
  bg_image_file: { type: "string", format: "binary", description: "A background image composited behind the subject." },
  crop: { type: "string", enum: ["true", "false"], description: "Crop to the subject." },
  aspect_ratio: { type: "string", description: "With crop: the result's aspect ratio, e.g. 4:3." },
  image_url: { type: "string", format: "uri", description: "Fetch the image from this URL instead of uploading it (public addresses only)." },
  webhook_url: { type: "string", format: "uri", description: "Async: POST the job's outcome here, signed with Cutline-Signature." },
  async: { type: "string", enum: ["true", "false"], description: "true: answer 202 with the job at once instead of the image." },
};

const UPLOAD_BODY = {
  required: true,
  content: {
    "multipart/form-data": {
      schema: {
        type: "object" as const,
        properties: { image_file: { type: "string" as const, format: "binary", description: "The image (also accepted as image)." }, ...IMAGE_OPTIONS },
      },
    },
    "image/*": { schema: { type: "string" as const, format: "binary", description: "The raw image as the body; options in the query." } },
  },
};

const IDEMPOTENCY_KEY: Parameter = {
  name: "Idempotency-Key",
  in: "header",
  description: "A retry with the same key returns the first result and charges once; the same key with another body answers 422.",
  schema: { type: "string", maxLength: 255 },
};

function imageOperation(operationId: string, summary: string, tag: string): Operation {
  return {
    operationId,
    summary,
    description: "Options are validated before any credit is held. Synchronous calls answer the image; `async=true` answers 202 with the job.",
    tags: [tag],
    parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
    requestBody: UPLOAD_BODY,
    responses: {
      "200": {
        description: "The result image.",
        headers: IMAGE_HEADERS,
        content: { "image/png": { schema: { type: "string", format: "binary" } }, "image/webp": { schema: { type: "string", format: "binary" } }, "image/jpeg": { schema: { type: "string", format: "binary" } } },
      },
      "202": { description: "Accepted (async=true): the queued job.", content: json(ref("Job")) },
      "400": errorResponse("BadRequest"),
      "402": errorResponse("PaymentRequired"),
      "413": errorResponse("PayloadTooLarge"),
      "422": errorResponse("IdempotencyConflict"),
      ...AUTHENTICATED_ERRORS,
      "503": errorResponse("Unavailable"),
      "504": errorResponse("Timeout"),
    },
  };
}

const JOB_ID: Parameter = { name: "id", in: "path", required: true, description: "The job's id.", schema: { type: "string" } };

function buildDocument(): OpenApiDocument {
  return {
    openapi: "3.1.0",
    info: {
      title: "Cutline API",
      version: "1",
      description:
        "Background removal and smart crop, billed in credits. Authenticate with `X-Api-Key: <key>` or `Authorization: Bearer <key>`. " +
        'Every native route answers refusals as `{"errors":[{"title","code","detail"}]}` with a stable `code`. Credits are decimal numbers of credits (1.3).',
      license: { name: "AGPL-3.0-or-later", identifier: "AGPL-3.0-or-later" },
    },
    servers: [{ url: "/", description: "This gateway" }],
    tags: [
      { name: "Images", description: "Background removal and smart crop, synchronous or asynchronous." },
      { name: "Jobs", description: "Asynchronous jobs, batches and their results." },
      { name: "Account", description: "Quotes, balance and usage of the caller's own account." },
      { name: "Reference", description: "This document and its rendering." },
    ],
    security: [{ ApiKey: [] }, { Bearer: [] }],
    paths: {
      "/v1/matting": { post: imageOperation("removeBackground", "Remove the background of an image", "Images") },
      "/v1/smart-crop": { post: imageOperation("smartCrop", "Crop an image to its subject (Smart Crop, 1.3 credits)", "Images") },
      "/v1/matting/batch": {
        post: {
          operationId: "submitBatch",
          summary: "Submit a batch of images",
          description: "Repeated image_file fields, or JSON {\"image_urls\":[..]}, up to the plan's batch limit. One item's failure never charges or fails the others.",
          tags: ["Jobs"],
          parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": { schema: { type: "object", properties: { image_file: { type: "array", items: { type: "string", format: "binary" } }, ...IMAGE_OPTIONS } } },
              "application/json": { schema: { type: "object", required: ["image_urls"], properties: { image_urls: { type: "array", items: { type: "string", format: "uri" } } } } },
            },
          },
          responses: { "202": { description: "The batch and each item's job or refusal.", content: json(ref("Batch")) }, "400": errorResponse("BadRequest"), "402": errorResponse("PaymentRequired"), "413": errorResponse("PayloadTooLarge"), "422": errorResponse("IdempotencyConflict"), ...AUTHENTICATED_ERRORS },
        },
      },
      "/v1/batches/{id}": {
        get: {
          operationId: "getBatch",
          summary: "A batch and its items",
          tags: ["Jobs"],
          parameters: [{ name: "id", in: "path", required: true, description: "The batch's id.", schema: { type: "string" } }],
          responses: { "200": { description: "The batch.", content: json(ref("Batch")) }, "404": errorResponse("NotFound"), ...AUTHENTICATED_ERRORS },
        },
      },
      "/v1/jobs": {
        get: {
          operationId: "listJobs",
          summary: "The account's jobs, newest first",
          tags: ["Jobs"],
          parameters: [
            { name: "page_size", in: "query", description: "Jobs per page.", schema: { type: "integer", minimum: 1, maximum: 100, default: 20 } },
            { name: "page_token", in: "query", description: "next_page_token of the previous page.", schema: { type: "string" } },
          ],
          responses: {
            "200": { description: "A page of jobs.", content: json({ type: "object", required: ["jobs"], properties: { jobs: { type: "array", items: ref("Job") }, next_page_token: { type: ["string", "null"] } } }) },
            "400": errorResponse("BadRequest"),
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/v1/jobs/{id}": {
        get: { operationId: "getJob", summary: "A job", tags: ["Jobs"], parameters: [JOB_ID], responses: { "200": { description: "The job.", content: json(ref("Job")) }, "404": errorResponse("NotFound"), ...AUTHENTICATED_ERRORS } },
        delete: {
          operationId: "cancelJob",
          summary: "Cancel a job, or delete a finished job's files",
          description: "Cancelling releases the job's hold: nothing is charged.",
          tags: ["Jobs"],
          parameters: [JOB_ID],
          responses: { "200": { description: "The job after the call.", content: json(ref("Job")) }, "404": errorResponse("NotFound"), ...AUTHENTICATED_ERRORS },
        },
      },
      "/v1/results/{id}": {
        get: {
          operationId: "getResult",
          summary: "A job's result, by its signed URL",
          description: "The URL is signed and valid 24 h; it needs no API key. A tampered or expired URL answers 403.",
          tags: ["Jobs"],
          security: [],
          parameters: [
            JOB_ID,
            { name: "expires", in: "query", required: true, description: "Expiry, in Unix seconds.", schema: { type: "integer" } },
            { name: "signature", in: "query", required: true, description: "The URL's signature (hex).", schema: { type: "string" } },
          ],
          responses: {
            "200": { description: "The result.", content: { "image/png": { schema: { type: "string", format: "binary" } } } },
            "403": errorResponse("Forbidden"),
            "404": errorResponse("NotFound"),
            "500": errorResponse("Internal"),
          },
        },
      },
      "/v1/quote": {
        post: {
          operationId: "quote",
          summary: "The exact credits an operation costs, before any work",
          description: "Priced at the size the call would process (after the plan's downscaling): a later call captures exactly this amount.",
          tags: ["Account"],
          requestBody: { required: true, content: json(ref("QuoteRequest"), { operation: "matting", width: 1024, height: 768, size: "full" }) },
          responses: { "200": { description: "The cost.", content: json(ref("Quote"), { credits: 0.5, price_book_version: "2025-01-default" }) }, "400": errorResponse("BadRequest"), "501": errorResponse("NotImplemented"), ...AUTHENTICATED_ERRORS },
        },
      },
      "/v1/credit/balance": {
        get: {
          operationId: "getBalance",
          summary: "API credits: available, held, each bucket with its expiry, and what they buy",
          tags: ["Account"],
          responses: { "200": { description: "The balance.", content: json(ref("Balance")) }, ...AUTHENTICATED_ERRORS },
        },
      },
      "/v1/usage": {
        get: {
          operationId: "getUsage",
          summary: "The current cycle's usage per day, API key and member",
          description: "JSON by default; `Accept: text/csv` answers CSV with the columns date, api_key_id, member_id, calls, credits.",
          tags: ["Account"],
          responses: {
            "200": {
              description: "Usage of the current billing cycle (captured calls).",
              content: { ...json(ref("Usage")), "text/csv": { schema: { type: "string" }, example: "date,api_key_id,member_id,calls,credits\r\n2026-11-27,key_1,,4,1\r\n" } },
            },
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/openapi.json": {
        get: { operationId: "getOpenApi", summary: "This document", tags: ["Reference"], security: [], responses: { "200": { description: "The OpenAPI 3.1 document.", content: json({ type: "object" }) } } },
      },
      "/docs": {
        get: { operationId: "getDocs", summary: "This document, rendered (Swagger UI)", tags: ["Reference"], security: [], responses: { "200": { description: "An HTML page.", content: { "text/html": { schema: { type: "string" } } } } } },
      },
      "/docs/{asset}": {
        get: {
          operationId: "getDocsAsset",
          summary: "A static file of the rendered reference (Swagger UI's scripts and styles)",
          tags: ["Reference"],
          security: [],
          parameters: [{ name: "asset", in: "path", required: true, description: "The file's name.", schema: { type: "string" } }],
          responses: { "200": { description: "The file." }, "404": errorResponse("NotFound") },
        },
      },
    },
    components: {
      securitySchemes: {
        ApiKey: { type: "apiKey", in: "header", name: "X-Api-Key", description: "Your API key." },
        Bearer: { type: "http", scheme: "bearer", description: "Your API key as a bearer token." },
      },
      parameters: { IdempotencyKey: IDEMPOTENCY_KEY },
      schemas: {
        Error: {
          type: "object",
          required: ["errors"],
          properties: {
            errors: {
              type: "array",
              items: {
                type: "object",
                required: ["title", "code"],
                properties: {
                  title: { type: "string", description: "What went wrong." },
                  code: { type: "string", description: "Stable and machine-readable, e.g. not_found, too_many_bytes, monthly_quota_exceeded." },
                  detail: { type: "string", description: "The specifics: the limit, the value, what to do." },
                  available_credits: { type: "string", description: "402 only: the balance, in decimal credits." },
                  cost_credits: { type: "string", description: "402 only: what the call costs, in decimal credits." },
                  top_up: { type: "string", description: "402 only: how to buy more credits." },
                },
              },
            },
          },
        },
        Job: {
          type: "object",
          required: ["id", "status", "progress", "credits_charged", "result_url", "error"],
          properties: {
            id: { type: "string" },
            status: { type: "string", enum: ["queued", "running", "succeeded", "failed", "cancelled"] },
            progress: { type: "number", minimum: 0, maximum: 1 },
            credits_charged: credits("Captured so far"),
            result_url: { type: ["string", "null"], format: "uri", description: "Signed, valid 24 h; null until the job succeeds." },
            error: { oneOf: [{ type: "null" }, ref("JobError")] },
            created_at: { type: ["string", "null"], format: "date-time" },
            processing_time_ms: { type: ["integer", "null"], minimum: 0, description: "Once succeeded: as X-Processing-Time-Ms; null before." },
            queue_time_ms: { type: ["integer", "null"], minimum: 0, description: "Once succeeded: as X-Queue-Time-Ms; null before." },
            inference_time_ms: { type: ["integer", "null"], minimum: 0, description: "Once succeeded: as X-Inference-Time-Ms; null before." },
          },
        },
        JobError: { type: "object", required: ["code", "title"], properties: { code: { type: "string" }, title: { type: "string" } } },
        Batch: {
          type: "object",
          required: ["batch_id", "items"],
          properties: {
            batch_id: { type: "string" },
            items: {
              type: "array",
              items: {
                type: "object",
                required: ["index", "job", "error"],
                properties: { index: { type: "integer", minimum: 0 }, job: { oneOf: [{ type: "null" }, ref("Job")] }, error: { oneOf: [{ type: "null" }, ref("JobError")] } },
              },
            },
          },
        },
        QuoteRequest: {
          type: "object",
          required: ["operation", "width", "height"],
          properties: {
            operation: { type: "string", enum: ["matting", "smart_crop", "video_matting"] },
            width: { type: "integer", minimum: 1, description: "Input width in pixels, before downscaling." },
            height: { type: "integer", minimum: 1, description: "Input height in pixels, before downscaling." },
            size: { type: "string", enum: ["preview", "full", "hd"], default: "full" },
            quality: { type: "integer", minimum: 1, maximum: 100, description: "Output quality of lossy formats; does not change the price." },
            seconds: { type: "number", description: "video_matting: the video's length (billed per started second)." },
          },
        },
        Quote: { type: "object", required: ["credits"], properties: { credits: credits("The exact cost"), price_book_version: { type: "string" } } },
        Balance: {
          type: "object",
          required: ["available_credits", "held_credits", "buckets", "affordable"],
          properties: {
            available_credits: credits("Spendable now (remaining minus held)"),
            held_credits: credits("Held by calls in progress"),
            buckets: {
              type: "array",
              description: "Live grants in spend order: soonest expiry first.",
              items: {
                type: "object",
                required: ["id", "kind", "granted_credits", "remaining_credits", "held_credits", "expires_at"],
                properties: {
                  id: { type: "string" },
                  kind: { type: "string", enum: ["trial", "subscription", "pack", "top_up", "promo", "refund"] },
                  granted_credits: credits("Granted"),
                  remaining_credits: credits("Left"),
                  held_credits: credits("Held"),
                  expires_at: { type: ["string", "null"], format: "date-time", description: "null: never expires." },
                },
              },
            },
            affordable: {
              type: "array",
              description: "How many more of each reference operation the available credits buy.",
              items: { type: "object", required: ["operation", "description", "count"], properties: { operation: { type: "string" }, description: { type: "string" }, count: { type: "integer", minimum: 0 } } },
            },
          },
        },
        Usage: {
          type: "object",
          required: ["cycle", "days", "api_keys", "members", "rows"],
          properties: {
            cycle: {
              type: "object",
              required: ["started_at", "ends_at", "calls", "monthly_calls_max"],
              properties: {
                started_at: { type: "string", format: "date-time" },
                ends_at: { type: ["string", "null"], format: "date-time" },
                calls: { type: "integer", description: "Calls admitted this cycle, against the monthly quota." },
                monthly_calls_max: { type: "integer", description: "The plan's monthly call quota." },
              },
            },
            days: { type: "array", items: { type: "object", properties: { date: { type: "string", format: "date" }, calls: { type: "integer" }, credits: credits("Captured") } } },
            api_keys: { type: "array", items: { type: "object", properties: { api_key_id: { type: "string" }, calls: { type: "integer" }, credits: credits("Captured") } } },
            members: { type: "array", items: { type: "object", properties: { member_id: { type: "string" }, calls: { type: "integer" }, credits: credits("Captured") } } },
            rows: {
              type: "array",
              description: "One row per UTC day, API key and member.",
              items: { type: "object", properties: { date: { type: "string", format: "date" }, api_key_id: { type: "string" }, member_id: { type: "string" }, calls: { type: "integer" }, credits: credits("Captured") } },
            },
          },
        },
      },
      responses: {
        BadRequest: { description: "The request or an option is invalid (the code names it: invalid_option, missing_image, too_many_pixels, ...).", content: json(ref("Error")) },
        Unauthenticated: { description: "No API key (missing_api_key), or an unknown or revoked one (invalid_api_key).", content: json(ref("Error")) },
        PaymentRequired: { description: "Not enough credits (insufficient_credits): the balance, the cost and how to top up.", content: json(ref("Error")) },
        Forbidden: { description: "A result URL that was tampered with (result_url_invalid) or has expired (result_url_expired).", content: json(ref("Error")) },
        NotFound: { description: "No such route (not_found) or resource (job_not_found, ...).", content: json(ref("Error")) },
        PayloadTooLarge: { description: "The upload exceeds the plan's or the server's byte limit (too_many_bytes); the message names the limit.", content: json(ref("Error")) },
        IdempotencyConflict: { description: "The Idempotency-Key was used with another body.", content: json(ref("Error")) },
        TooManyRequests: {
          description: "A plan limit: rate_limited, concurrency_limited, read_rate_limited, monthly_quota_exceeded. Retry after Retry-After seconds.",
          headers: { "Retry-After": { description: "Seconds to wait (for monthly_quota_exceeded: until the billing cycle renews).", schema: { type: "integer" } } },
          content: json(ref("Error")),
        },
        Internal: { description: "A server fault (internal); nothing was charged.", content: json(ref("Error")) },
        NotImplemented: { description: "An operation this server does not price yet (operation_unavailable).", content: json(ref("Error")) },
        Unavailable: { description: "A dependency is briefly unavailable; retry.", content: json(ref("Error")) },
        Timeout: { description: "The synchronous call did not finish in time (sync_timeout); the job goes on.", content: json(ref("Error")) },
      },
    },
  };
}

/** The document, built once. */
export const OPENAPI_DOCUMENT: OpenApiDocument = buildDocument();

/** Every method and path the document describes, upper-case methods, as the route table lists them. */
export function documentedRoutes(document: OpenApiDocument = OPENAPI_DOCUMENT): { method: string; path: string }[] {
  return Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => ({ method: method.toUpperCase(), path })));
}

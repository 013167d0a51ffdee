// The OpenAPI 3.1 document of the gateway's REST API, served at GET /openapi.json and rendered
// at GET /docs. test/public-api.spec.ts holds it in sync with the route table: every route the
// gateway serves is documented, and every documented route is served.
//
// Credits are JSON numbers of credits with at most three decimals (1.3), formatted exactly from
// the ledger's integer millicredits.
import { GENERATIVE_PREFIXES } from "./domain/photoroom-params.ts";

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

const IMAGE_HEADERS = {
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
} satisfies Response["headers"];

const IMAGE_OPTIONS: Record<string, JsonSchema> = {
  size: { type: "string", enum: ["preview", "small", "full", "auto", "hd"], default: "full", description: "Output size; hd is priced at the HD multiplier." },
  quality: { type: "string", enum: ["fast", "balanced", "best"], default: "balanced", description: "Speed against accuracy: fast runs the model at 896² (about 0.77× balanced's model time), balanced at 1024², best fuses the masks of the image and its mirror image at 896², 1024² and 1152² (the best IoU and edges, about 6× balanced's model time on a CPU). One price for all three." },
  format: { type: "string", enum: ["png", "webp", "jpg", "jpeg", "mask"], default: "png" },
  output_format: { type: "string", enum: ["png", "webp", "jpg", "jpeg", "mask"], description: "Alias of format." },
  bg_color: { type: "string", description: "A background colour (hex, with or without #), or transparent." },
  bg_image_file: { type: "string", format: "binary", description: "A background image composited behind the subject." },
  crop: { type: "string", enum: ["true", "false"], description: "Crop to the subject." },
  crop_margin: { type: "string", default: "0", description: "With crop: room around the subject, in percent of its size, 0 to 1000 (\"10\" or \"10%\")." },
  aspect_ratio: { type: "string", description: "With crop: the result's aspect ratio, e.g. 4:3 (1:100 to 100:1)." },
  image_url: {
    type: "string",
    format: "uri",
    maxLength: 2048,
    description:
      "Instead of image_file: the gateway GETs the image from this http(s) URL (public addresses only; redirects re-checked; OUTBOUND_TIMEOUT_MS; at most the plan's upload limit, UPLOAD_BYTES_MAX, IMAGE_BYTES_MAX or OUTBOUND_BYTES_MAX, the smallest) after authentication and before any credit is held, then checks it as an upload. Refusals: image_url_invalid (400), image_url_refused (400, a private, loopback or link-local address), image_url_unreachable (422: DNS, connection, timeout or a non-2xx answer), image_url_too_large (413); both image_file and image_url: conflicting_image_inputs (400).",
  },
  bg_image_url: { type: "string", format: "uri", maxLength: 2048, description: "Instead of bg_image_file: the background image's URL, fetched and refused exactly as image_url is." },
  webhook_url: { type: "string", format: "uri", description: "Async: POST the job's outcome here, signed with Cutline-Signature." },
  async: { type: "string", enum: ["true", "false"], description: "true: answer 202 with the job at once instead of the image." },
};

// One call's retention: single images only (a batch is asynchronous, so it keeps the account's).
const RETENTION_OPTION: Record<string, JsonSchema> = {
  retention: {
    type: "string",
    enum: ["account", "none"],
    default: "account",
    description: "none: zero retention, the input and result are deleted right after the response (synchronous calls only; with async=true it answers 400 zero_retention_async). account: kept for the account's retention_hours.",
  },
};

/** Smart Crop's options: the input's own pixels come back, so nothing that makes a cut-out applies. */
const SMART_CROP_OPTIONS: Record<string, JsonSchema> = {
  aspect_ratio: { type: "string", description: "The result's aspect ratio, e.g. 16:9, 1:1 or 4x5 (1:100 to 100:1); unset: the subject's box plus the margin." },
  crop_margin: { type: "string", default: "0", description: "Room around the subject's box on each side, in percent of its size, 0 to 1000 (\"10\" or \"10%\"). The crop stays inside the image: no padding is added." },
  format: { type: "string", enum: ["jpg", "jpeg", "png", "webp"], default: "jpg", description: "JPEG by default: the background is kept, so no alpha is needed. PNG and WebP carry alpha only where the input had transparency." },
  output_format: { type: "string", enum: ["jpg", "jpeg", "png", "webp"], description: "Alias of format." },
  size: IMAGE_OPTIONS.size!,
  bg_color: { type: "string", description: "Fills the input's own transparent pixels, if it has any (JPEG: white by default)." },
  image_url: IMAGE_OPTIONS.image_url!,
  webhook_url: IMAGE_OPTIONS.webhook_url!,
  async: IMAGE_OPTIONS.async!,
  retention: RETENTION_OPTION.retention!,
};

// A batch's one set of options: no per-call image or background fields.
const BATCH_OPTIONS: Record<string, JsonSchema> = Object.fromEntries(Object.entries(IMAGE_OPTIONS).filter(([name]) => !["bg_image_file", "bg_image_url", "image_url"].includes(name)));

function uploadBody(options: Record<string, JsonSchema>) {
  // A body that carries no file (JSON, URL-encoded) has the same fields less the file ones.
  const urlBodyOptions = Object.fromEntries(Object.entries(options).filter(([name]) => name !== "bg_image_file"));
  return {
    required: true,
    content: {
      "multipart/form-data": {
        schema: {
          type: "object" as const,
          properties: { image_file: { type: "string" as const, format: "binary", description: "The image (also accepted as image)." }, ...options },
        },
      },
      "application/x-www-form-urlencoded": {
        schema: { type: "object" as const, required: ["image_url"], properties: urlBodyOptions, description: "image_url (and bg_image_url) with the options as form fields." },
      },
      "application/json": {
        schema: { type: "object" as const, required: ["image_url"], properties: urlBodyOptions, description: "image_url (and bg_image_url) with the options as JSON fields (strings, numbers or booleans); at most 16384 bytes." },
        example: { image_url: "https://example.com/photo.jpg", size: "full" },
      },
      "image/*": { schema: { type: "string" as const, format: "binary", description: "The raw image as the body; options in the query (or image_url in the query and no body)." } },
    },
  };
}

const IDEMPOTENCY_KEY: Parameter = {
  name: "Idempotency-Key",
  in: "header",
  description: "A retry with the same key returns the first result and charges once; the same key with another body answers 422.",
  schema: { type: "string", maxLength: 255 },
};

function imageOperation(operationId: string, summary: string, options: { about?: string; fields: Record<string, JsonSchema> }): Operation {
  return {
    operationId,
    summary,
    description: `${options.about ?? ""}Options are validated before any credit is held. Synchronous calls answer the image; \`async=true\` answers 202 with the job.`,
    tags: ["Images"],
    parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
    requestBody: uploadBody(options.fields),
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
      "422": errorResponse("Unprocessable"),
      ...AUTHENTICATED_ERRORS,
      "503": errorResponse("Unavailable"),
      "504": errorResponse("Timeout"),
    },
  };
}

const JOB_ID: Parameter = { name: "id", in: "path", required: true, description: "The job's id.", schema: { type: "string" } };

// remove.bg's API as a drop-in (handlers/removebg.routes.ts): its parameters, headers and error shape.
const REMOVEBG_TAG = "remove.bg compatible";
const removeBgError = (description: string): Response => ({ description, content: json(ref("RemoveBgError")) });
const REMOVEBG_ERRORS: Record<string, Response> = {
  "403": { description: 'A missing or unknown key: exactly {"errors":[{"title":"API Key invalid","code":"auth_failed"}]}.', content: json(ref("RemoveBgError"), { errors: [{ title: "API Key invalid", code: "auth_failed" }] }) },
  "429": {
    description: "A plan limit (rate_limit_exceeded); nothing charged. Retry after Retry-After seconds.",
    headers: { "Retry-After": { description: "Seconds to wait.", schema: { type: "integer" } } },
    content: json(ref("RemoveBgError")),
  },
  "500": removeBgError("A server fault (internal); nothing charged."),
};
const REMOVEBG_FIELDS: Record<string, JsonSchema> = {
  image_file_b64: { type: "string", description: "The image as base64; at most UPLOAD_BYTES_MAX once decoded (its length is checked before decoding)." },
  image_url: {
    type: "string",
    format: "uri",
    description:
      "Fetched as /v1/matting's image_url is (public addresses only, redirects re-checked, OUTBOUND_TIMEOUT_MS, the smallest byte limit), after authentication and before any credit is held, then checked as an upload. Refusals, all 400: invalid_image_url (malformed), failed_image_download (refused address, unreachable, timeout or a non-2xx answer), file_too_large.",
  },
  size: { type: "string", enum: ["preview", "small", "regular", "full", "4k", "auto", "medium", "hd"], default: "preview", description: "preview/small/regular: at most 0.25 MP; medium: at most 1.5 MP; hd: at most 4 MP (aspect ratio kept, never enlarged); full/4k/auto: the original resolution (capped by IMAGE_LONGEST_SIDE_STANDARD). Every size above preview is priced alike, by the processed input's size." },
  quality: { type: "string", enum: ["fast", "balanced", "best"], description: "This server's own parameter: preview/small/regular default to fast (an 896² mask covers 0.25 MP), larger sizes to balanced; best fuses the masks of the image and its mirror image at 896², 1024² and 1152². One price for all three." },
  type: { type: "string", enum: ["auto", "person", "product", "car", "animal", "graphic", "transportation"], default: "auto", description: "Accepted and ignored: the model finds the foreground itself." },
  type_level: { type: "string", enum: ["none", "1", "2", "latest"], default: "1", description: "Accepted and ignored: no X-Type is sent (this server does not classify)." },
  format: { type: "string", enum: ["auto", "png", "jpg", "webp", "zip"], default: "auto", description: "auto: jpg behind an opaque bg_color or bg_image_file, else png. zip: application/zip holding color.jpg (the result's colours, JPEG) and alpha.png (its alpha matte, grayscale PNG), both at the result's size; composing them (alpha as opacity) gives the png result. Behind bg_color or a background image, color.jpg is the composed image and alpha.png opaque. One job, charged once." },
  roi: { type: "string", default: "0% 0% 100% 100%", description: "Only the whole image is accepted; another region is refused (invalid_roi, roi_exceeds_bounds, roi_region_empty)." },
  crop: { type: "boolean", default: false, description: "Crop off empty regions around the subject." },
  crop_margin: { type: "string", default: "0", description: "With crop=true: one whole percent of the subject on every side, 0% to 50% (1, 2 or 4 equal values); pixel margins are refused (invalid_crop_margin)." },
  scale: { type: "string", default: "original", description: '"original" or 10% to 100%: the subject\'s size relative to the image.' },
  position: { type: "string", default: "original", description: '"original", "center", or one or two percents (horizontal, vertical).' },
  channels: { type: "string", enum: ["rgba", "alpha"], default: "rgba", description: "alpha: the grayscale matte as PNG (with format jpg, webp or zip: invalid_channels; zip carries the matte as alpha.png)." },
  add_shadow: { type: "boolean", default: false, description: "Accepted and ignored (remove.bg adds shadows to cars only)." },
  semitransparency: { type: "boolean", default: true, description: "Accepted and ignored (remove.bg applies it to car windows only)." },
  shadow_method: { type: "string", enum: ["latest", "legacy"], description: "Accepted and ignored (only with add_shadow)." },
  bg_color: { type: "string", description: "Hex (3, 4, 6 or 8 digits, with or without #; alpha must be ff) or a CSS colour name." },
  bg_image_url: { type: "string", format: "uri", description: "Fetched and checked as image_url is; refusals, all 400: invalid_bg_image_url, failed_bg_download, file_too_large." },
};

function removeBgPaths(): OpenApiDocument["paths"] {
  const fields = { type: "object" as const, properties: REMOVEBG_FIELDS };
  return {
    "/v1.0/removebg": {
      post: {
        operationId: "removeBgRemoveBackground",
        summary: "remove.bg: remove the background of an image",
        description: "remove.bg's `POST /v1.0/removebg` on this server's job path (same billing, limits and idempotency as /v1/matting). Binary by default; `Accept: application/json` answers `{\"data\":{\"result_b64\"}}`. The subject's box in the result comes as X-Foreground-* (and foreground_* in JSON) when the mask found a subject; X-Type is not sent (this server does not classify).",
        tags: [REMOVEBG_TAG],
        parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
        requestBody: {
          required: true,
          content: {
            "multipart/form-data": { schema: { type: "object", properties: { image_file: { type: "string", format: "binary" }, bg_image_file: { type: "string", format: "binary" }, ...REMOVEBG_FIELDS } } },
            "application/json": { schema: fields },
            "application/x-www-form-urlencoded": { schema: fields },
          },
        },
        responses: {
          "200": {
            description: "The result image (format=zip: the zip of color.jpg and alpha.png), or with Accept: application/json its base64.",
            headers: {
              "X-Credits-Charged": IMAGE_HEADERS["X-Credits-Charged"],
              "X-Width": { description: "Width of the result image, in pixels.", schema: { type: "integer" } },
              "X-Height": { description: "Height of the result image, in pixels.", schema: { type: "integer" } },
              "X-Foreground-Top": { description: "The subject's box in the result: top edge, in pixels (absent when no subject was found).", schema: { type: "integer" } },
              "X-Foreground-Left": { description: "The subject's box: left edge, in pixels.", schema: { type: "integer" } },
              "X-Foreground-Width": { description: "The subject's box: width, in pixels.", schema: { type: "integer" } },
              "X-Foreground-Height": { description: "The subject's box: height, in pixels.", schema: { type: "integer" } },
              "X-RateLimit-Limit": IMAGE_HEADERS["X-RateLimit-Limit"],
              "X-RateLimit-Remaining": IMAGE_HEADERS["X-RateLimit-Remaining"],
              "X-RateLimit-Reset": IMAGE_HEADERS["X-RateLimit-Reset"],
            },
            content: {
              "image/png": { schema: { type: "string", format: "binary" } },
              "image/jpeg": { schema: { type: "string", format: "binary" } },
              "image/webp": { schema: { type: "string", format: "binary" } },
              "application/zip": { schema: { type: "string", format: "binary" } },
              ...json({ type: "object", required: ["data"], properties: { data: { type: "object", required: ["result_b64"], properties: {
                        result_b64: { type: "string", description: "The result image (or zip), base64." },
                        foreground_top: { type: "integer", description: "The subject's box in the result, in pixels (absent when no subject was found)." },
                        foreground_left: { type: "integer" },
                        foreground_width: { type: "integer" },
                        foreground_height: { type: "integer" },
                      } } } }),
            },
          },
          "400": removeBgError("A parameter or the image refused, with remove.bg's code: invalid_size, invalid_format, missing_source, file_too_large, failed_to_read_image, ..."),
          "402": removeBgError("Not enough credits (insufficient_credits); nothing charged."),
          ...REMOVEBG_ERRORS,
        },
      },
    },
    "/v1.0/account": {
      get: {
        operationId: "removeBgAccount",
        summary: "remove.bg: credit balance",
        description: "subscription: subscription and trial credits; payg: packs, top-ups, promos and refunds; enterprise: 0; free_calls: 0 (every call is priced).",
        tags: [REMOVEBG_TAG],
        responses: { "200": { description: "The balance, in remove.bg's shape.", content: json(ref("RemoveBgAccount")) }, ...REMOVEBG_ERRORS },
      },
    },
  };
}

const REMOVEBG_SCHEMAS: Record<string, JsonSchema> = {
  RemoveBgError: {
    type: "object",
    required: ["errors"],
    properties: { errors: { type: "array", items: { type: "object", required: ["title", "code"], properties: { title: { type: "string" }, code: { type: "string" }, detail: { type: "string" } } } } },
  },
  RemoveBgAccount: {
    type: "object",
    required: ["data"],
    properties: {
      data: {
        type: "object",
        required: ["attributes"],
        properties: {
          attributes: {
            type: "object",
            required: ["credits", "api"],
            properties: {
              credits: {
                type: "object",
                required: ["total", "subscription", "payg", "enterprise"],
                properties: { total: credits("All"), subscription: credits("Subscription and trial"), payg: credits("Packs, top-ups, promos, refunds"), enterprise: credits("Enterprise (always 0)") },
              },
              api: { type: "object", required: ["free_calls", "sizes"], properties: { free_calls: { type: "integer" }, sizes: { type: "string", enum: ["all"] } } },
            },
          },
        },
      },
    },
  },
};

// Photoroom's API as a drop-in (handlers/photoroom.routes.ts, domain/photoroom-params.ts): its fields and error shapes.
const PHOTOROOM_TAG = "Photoroom compatible";
const PHOTOROOM_RESULT_HEADERS = {
  "X-Credits-Charged": IMAGE_HEADERS["X-Credits-Charged"],
  "X-Job-Id": IMAGE_HEADERS["X-Job-Id"],
  "X-RateLimit-Limit": IMAGE_HEADERS["X-RateLimit-Limit"],
  "X-RateLimit-Remaining": IMAGE_HEADERS["X-RateLimit-Remaining"],
  "X-RateLimit-Reset": IMAGE_HEADERS["X-RateLimit-Reset"],
} satisfies Response["headers"];
const IMAGE_CONTENT: Record<string, MediaType> = {
  "image/png": { schema: { type: "string", format: "binary" } },
  "image/jpeg": { schema: { type: "string", format: "binary" } },
  "image/webp": { schema: { type: "string", format: "binary" } },
};
/** A required multipart/form-data body of these fields (Photoroom's routes take no other body). */
function multipartBody(properties: Record<string, JsonSchema>, required?: string[]): NonNullable<Operation["requestBody"]> {
  return { required: true, content: { "multipart/form-data": { schema: { type: "object", ...(required ? { required } : {}), properties } } } };
}
const segmentError = (description: string): Response => ({ description, content: json(ref("PhotoroomSegmentError")) });
const editError = (description: string): Response => ({ description, content: json(ref("PhotoroomError")) });
const PHOTOROOM_V2_ERRORS: Record<string, Response> = {
  "403": editError("A missing or unknown x-api-key."),
  "429": { description: "A plan limit; nothing charged. Retry after Retry-After seconds.", headers: { "Retry-After": { description: "Seconds to wait.", schema: { type: "integer" } } }, content: json(ref("PhotoroomError")) },
  "500": editError("A server fault; nothing charged."),
};
const SPACING: JsonSchema = { type: ["number", "string"], description: "A ratio 0 to 0.49 or a percent \"0%\" to \"49%\" of the output; the four sides must end up equal (per-side values override the general one). Pixel values (\"100px\") are refused. Given at all, the subject is fitted inside the output less margin, then less padding (to the whole percent), and centred unless aligned. padding acts as margin here: cropped sides are not snapped." };
const EDIT_FIELDS: Record<string, JsonSchema> = {
  removeBackground: { type: "boolean", default: true, description: "Only true: false is refused (POST /v1/smart-crop keeps the background)." },
  "background.color": { type: "string", default: "transparent", description: "Hex with or without # (6 digits, or 8 with alpha FF) or a colour name; translucent colours are refused." },
  "background.imageUrl": { type: "string", format: "uri", description: "Fetched as imageUrl is, then composited behind the subject (filling the output)." },
  "background.scaling": { type: "string", enum: ["fill"], default: "fill", description: "fill only (fit is refused); only with a background image." },
  "export.format": { type: "string", enum: ["png", "jpeg", "jpg", "webp"], default: "png" },
  outputSize: { type: "string", default: "auto", description: "auto and originalImage: the input's size; croppedSubject: cropped to the subject. <width>x<height> is refused (no fixed pixel size yet)." },
  padding: SPACING,
  paddingTop: SPACING,
  paddingBottom: SPACING,
  paddingLeft: SPACING,
  paddingRight: SPACING,
  margin: SPACING,
  marginTop: SPACING,
  marginBottom: SPACING,
  marginLeft: SPACING,
  marginRight: SPACING,
  scaling: { type: "string", enum: ["fit"], default: "fit", description: "fit only (fill is refused)." },
  horizontalAlignment: { type: "string", enum: ["left", "center", "right"], description: "Where the subject lands across the free space." },
  verticalAlignment: { type: "string", enum: ["top", "center", "bottom"], description: "Where the subject lands down the free space." },
  ignorePaddingAndSnapOnCroppedSides: { type: "boolean", description: "Only false (this server does not snap cropped sides); true is refused." },
  keepExistingAlphaChannel: { type: "string", enum: ["never"], description: "never only; auto is refused." },
  referenceBox: { type: "string", enum: ["subjectBox"], description: "subjectBox only; originalImage is refused." },
  preserveMetadata: { type: "string", enum: ["never"], description: "never only; the others are refused." },
};
const EDIT_DESCRIPTION =
  `Photoroom's Image Editing v2 on this server's job path (same billing, limits and idempotency as /v1/matting): background removal, a colour or image background, padding/margin/alignment and croppedSubject, export.format. Refused with 400 naming the parameter: generative edits (${GENERATIVE_PREFIXES.map((prefix) => (prefix.endsWith(".") ? `${prefix}*` : prefix)).join(", ")}), export.dpi, maxWidth, maxHeight, a WxH outputSize and any unknown parameter. No x-uncertainty-score or pr-* header is sent (none is computed here).`;

function photoroomPaths(): OpenApiDocument["paths"] {
  const editResponses = {
    "200": { description: "The edited image.", headers: PHOTOROOM_RESULT_HEADERS, content: IMAGE_CONTENT },
    "400": editError("A parameter or the image refused; the message names the parameter."),
    "402": { description: "Not enough credits; nothing charged. `{error:{message,detail}}` (Photoroom's payment error).", content: json(ref("PhotoroomError")) },
    ...PHOTOROOM_V2_ERRORS,
  };
  const query = (name: string, schema: JsonSchema): Parameter => ({ name, in: "query", description: schema.description ?? name, schema });
  return {
    "/v1/segment": {
      post: {
        operationId: "photoroomSegment",
        summary: "Photoroom: remove the background (v1)",
        description: "Photoroom's `POST /v1/segment` on this server's job path. Binary by default; `Accept: application/json` answers `{\"base64img\"}`. Refusals `{detail,status_code,type}` (type: this server's reason); a field it does not take is refused by name. No x-uncertainty-score (none is computed here).",
        tags: [PHOTOROOM_TAG],
        parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
        requestBody: multipartBody(
          {
            image_file: { type: "string", format: "binary", description: "The image; at most UPLOAD_BYTES_MAX." },
            format: { type: "string", enum: ["png", "jpg", "webp"], default: "png" },
            channels: { type: "string", enum: ["rgba", "alpha"], default: "rgba", description: "alpha: the grayscale matte as PNG (with jpg or webp: refused)." },
            bg_color: { type: "string", description: "Hex (#FF00FF, with or without #; alpha must be FF) or a colour name." },
            size: { type: "string", enum: ["preview", "full", "medium", "hd"], default: "full", description: "preview: at most 0.25 MP; medium: at most 1.5 MP; hd: at most 4 MP (aspect ratio kept, never enlarged); full: the original resolution (capped by IMAGE_LONGEST_SIDE_STANDARD)." },
            quality: { type: "string", enum: ["fast", "balanced", "best"], description: "This server's own parameter: preview defaults to fast, other sizes to balanced; best fuses the masks of the image and its mirror image at three sides. One price for all three." },
            crop: { type: "string", enum: ["true", "false"], default: "false", description: "Crop to the subject." },
            despill: { type: "string", enum: ["true", "false"], default: "false", description: "Accepted and without effect: this server removes no green-screen colour spill." },
          },
          ["image_file"],
        ),
        responses: {
          "200": {
            description: "The result image, or with Accept: application/json its base64.",
            headers: PHOTOROOM_RESULT_HEADERS,
            content: { ...IMAGE_CONTENT, ...json({ type: "object", required: ["base64img"], properties: { base64img: { type: "string", description: "The result image, base64." } } }) },
          },
          "400": segmentError("A parameter or the image refused (type missing_image, invalid_option, ...)."),
          "402": segmentError("Not enough credits (type insufficient_credits); nothing charged."),
          "403": segmentError("A missing or unknown x-api-key."),
          "429": segmentError("A plan limit; nothing charged. Retry after Retry-After seconds."),
          "500": segmentError("A server fault; nothing charged."),
        },
      },
    },
    "/v1/account": {
      get: {
        operationId: "photoroomAccountV1",
        summary: "Photoroom: credit balance (v1)",
        description: "available: the spendable credits; subscription: the part from subscription and trial grants.",
        tags: [PHOTOROOM_TAG],
        responses: { "200": { description: "The balance, in Photoroom's shape.", content: json(ref("PhotoroomAccountV1")) }, ...PHOTOROOM_V2_ERRORS },
      },
    },
    "/v2/account": {
      get: {
        operationId: "photoroomAccountV2",
        summary: "Photoroom: images left (v2)",
        description: "images: how many images the credits buy at the price of the cheapest image (POST /v1/quote); plan: the plan's code. Takes two account reads (balance and quote).",
        tags: [PHOTOROOM_TAG],
        responses: { "200": { description: "Images left, in Photoroom's shape.", content: json(ref("PhotoroomAccountV2")) }, ...PHOTOROOM_V2_ERRORS },
      },
    },
    "/v2/edit": {
      get: {
        operationId: "photoroomEditGet",
        summary: "Photoroom: edit an image by URL (v2)",
        description: `${EDIT_DESCRIPTION} imageUrl is fetched as /v1/matting's image_url is (after authentication, before any credit is held) and checked as an upload.`,
        tags: [PHOTOROOM_TAG],
        parameters: [
          { $ref: "#/components/parameters/IdempotencyKey" },
          { name: "imageUrl", in: "query", required: true, description: "The image's URL.", schema: { type: "string", format: "uri" } },
          ...Object.entries(EDIT_FIELDS).map(([name, schema]) => query(name, schema)),
        ],
        responses: editResponses,
      },
      post: {
        operationId: "photoroomEditPost",
        summary: "Photoroom: edit an uploaded image (v2)",
        description: `${EDIT_DESCRIPTION} imageUrl is also taken here, as on GET.`,
        tags: [PHOTOROOM_TAG],
        parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
        requestBody: multipartBody({
          imageFile: { type: "string", format: "binary", description: "The image; at most UPLOAD_BYTES_MAX." },
          imageUrl: { type: "string", format: "uri" },
          "background.imageFile": { type: "string", format: "binary", description: "A background image; at most UPLOAD_BYTES_MAX." },
          ...EDIT_FIELDS,
        }),
        responses: editResponses,
      },
    },
  };
}

const PHOTOROOM_SCHEMAS: Record<string, JsonSchema> = {
  PhotoroomSegmentError: { type: "object", required: ["detail", "status_code", "type"], properties: { detail: { type: "string" }, status_code: { type: "number" }, type: { type: "string" } } },
  PhotoroomError: { type: "object", required: ["error"], properties: { error: { type: "object", required: ["message"], properties: { message: { type: "string" }, detail: { type: "string", description: "On 402 only." } } } } },
  PhotoroomAccountV1: {
    type: "object",
    required: ["credits"],
    properties: { credits: { type: "object", required: ["available", "subscription"], properties: { available: credits("Spendable"), subscription: credits("Of which from subscription and trial grants") } } },
  },
  PhotoroomAccountV2: {
    type: "object",
    required: ["images", "plan"],
    properties: {
      images: { type: "object", required: ["available", "subscription"], properties: { available: { type: "integer", minimum: 0 }, subscription: { type: "integer", minimum: 0 } } },
      plan: { type: "string", description: "The plan's code." },
    },
  },
};

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
      { name: "Webhooks", description: "The account's webhook URL and signing secret, and each job's delivery log." },
      { name: "Payments", description: "Plans and packs on sale, hosted checkout and the customer portal (PaymentService over REST), and the payment provider's webhook." },
      { name: "Reference", description: "This document and its rendering." },
      { name: REMOVEBG_TAG, description: "remove.bg's API: change a remove.bg client's base URL to this server's /v1.0 and nothing else. Refusals in remove.bg's shape." },
      { name: PHOTOROOM_TAG, description: "Photoroom's API: change a Photoroom client's base URL (sdk.photoroom.com or image-api.photoroom.com) to this server and nothing else; the key goes in x-api-key. Refusals in Photoroom's shapes (any other path under /v2/ too; /v1/ is shared with this API, so its 404s stay native)." },
    ],
    security: [{ ApiKey: [] }, { Bearer: [] }],
    paths: {
      "/v1/matting": { post: imageOperation("removeBackground", "Remove the background of an image", { fields: { ...IMAGE_OPTIONS, ...RETENTION_OPTION } }) },
      "/v1/smart-crop": {
        post: imageOperation("smartCrop", "Crop an image to its subject (Smart Crop, 1.3 credits; HD 2.6)", {
          about: "The model finds the subject; the original image, background kept, comes back cropped around it, to the aspect ratio and margin asked for. Quote it with operation smart_crop. ",
          fields: SMART_CROP_OPTIONS,
        }),
      },
      "/v1/video/matting": {
        post: {
          operationId: "submitVideo",
          summary: "Remove the background of a video (asynchronous)",
          description:
            "MP4, MOV or WebM (sniffed from the bytes), in the multipart field video_file or as the raw body (Content-Type video/* or application/octet-stream, options in the query); streamed to disk, never held in memory. " +
            "Before any credit is held the video is probed (duration, frame rate, size, rotation, audio) and checked against the plan: bytes (200 MiB standard, 1 GiB pro; VIDEO_BYTES_MAX for the server), duration (60 s standard, 5 min pro); larger than 1080p is downscaled. " +
            "It is billed per started second at the rate of the resolution processed and the quality; 202 with the job, which reports frames_done, frames_total and eta_seconds while it runs. Watch it (GET /v1/jobs/{id}, JobService.WatchJob), cancel it (DELETE, the hold is released), or pass webhook_url. VideoService.SubmitVideo is the same call over Connect/gRPC.",
          tags: ["Jobs"],
          parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: {
                  type: "object",
                  required: ["video_file"],
                  properties: {
                    video_file: { type: "string", format: "binary", description: "The video: MP4, MOV or WebM." },
                    format: { type: "string", enum: ["webm", "mov", "mp4", "mask"], default: "webm", description: "webm: VP9 with alpha; mov: ProRes 4444 with alpha; mp4: H.264 on bg_color (white by default) or bg_image_file; mask: the grayscale mask." },
                    bg_color: { type: "string", description: "MP4 only: hex colour behind the subject." },
                    bg_image_file: { type: "string", format: "binary", description: "MP4 only: an image behind the subject; at most UPLOAD_BYTES_MAX." },
                    quality: { type: "string", enum: ["fast", "balanced", "best"], default: "balanced", description: "best bills at the top per-second rate." },
                    keep_audio: { type: "string", enum: ["true", "false"], default: "true", description: "Keep the audio track (not in a mask)." },
                    webhook_url: { type: "string", format: "uri", description: "POSTed, signed, when the job ends." },
                  },
                },
              },
              "video/*": { schema: { type: "string", format: "binary" } },
            },
          },
          responses: {
            "202": { description: "The queued job.", content: json(ref("Job")) },
            "400": errorResponse("BadRequest"),
            "402": errorResponse("PaymentRequired"),
            "413": errorResponse("PayloadTooLarge"),
            "422": { description: "A readable video with no video stream or a codec that cannot be decoded (video_no_stream, video_codec_unsupported), or an Idempotency-Key used with another body.", content: json(ref("Error")) },
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/v1/matting/batch": {
        post: {
          operationId: "submitBatch",
          summary: "Submit a batch of images",
          description:
            "Repeated image_file (or image_url) fields, or JSON {\"image_urls\":[..], ...options}, up to BATCH_ITEMS_MAX images (50 by default) and BATCH_BYTES_MAX bytes per call; each URL is one item, fetched as image_url is. One item's failure (a URL refused, unreachable or too large, a file that is not an image) is that item's error and never charges or fails the others. JobService.SubmitBatch is the same call over Connect/gRPC.",
          tags: ["Jobs"],
          parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: {
                  type: "object",
                  properties: {
                    image_file: { type: "array", items: { type: "string", format: "binary" } },
                    image_url: { type: "array", description: "URLs, one item each, in the order of the fields.", items: { type: "string", format: "uri", maxLength: 2048 } },
                    ...BATCH_OPTIONS,
                  },
                },
              },
              "application/json": {
                schema: { type: "object", required: ["image_urls"], properties: { image_urls: { type: "array", description: "One item per URL, in order.", items: { type: "string", format: "uri", maxLength: 2048 } }, ...BATCH_OPTIONS } },
                example: { image_urls: ["https://example.com/a.jpg", "https://example.com/b.png"], size: "full" },
              },
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
            { name: "limit", in: "query", description: "Jobs per page.", schema: { type: "integer", minimum: 1, maximum: 100, default: 20 } },
            { name: "cursor", in: "query", description: "next_cursor of the previous page.", schema: { type: "string" } },
          ],
          responses: {
            "200": {
              description: "A page of jobs.",
              content: json({ type: "object", required: ["jobs", "next_cursor"], properties: { jobs: { type: "array", items: ref("Job") }, next_cursor: { type: ["string", "null"], description: "null on the last page." } } }),
            },
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
            "200": {
              description: "The result. X-RateLimit-* report the account's read budget (READ_REQUESTS_PER_MINUTE), which result fetches count against.",
              headers: IMAGE_HEADERS,
              content: {
                "image/png": { schema: { type: "string", format: "binary" } },
                "video/webm": { schema: { type: "string", format: "binary" } },
                "video/quicktime": { schema: { type: "string", format: "binary" } },
                "video/mp4": { schema: { type: "string", format: "binary" } },
              },
            },
            "403": errorResponse("Forbidden"),
            "429": errorResponse("TooManyRequests"),
            "404": errorResponse("NotFound"),
            "500": errorResponse("Internal"),
          },
        },
      },
      "/v1/jobs/{id}/webhook-deliveries": {
        get: {
          operationId: "listWebhookDeliveries",
          summary: "A job's webhook deliveries, each with its attempts",
          tags: ["Webhooks"],
          parameters: [JOB_ID],
          responses: {
            "200": { description: "The delivery log.", content: json({ type: "object", required: ["deliveries"], properties: { deliveries: { type: "array", items: ref("WebhookDelivery") } } }) },
            "404": errorResponse("NotFound"),
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/v1/jobs/{id}/webhook-deliveries/{delivery_id}/redeliver": {
        post: {
          operationId: "redeliverWebhook",
          summary: "Send a delivery again now",
          description: "One attempt, whatever the delivery's status, signed with the current secret and added to its log.",
          tags: ["Webhooks"],
          parameters: [JOB_ID, { name: "delivery_id", in: "path", required: true, description: "The delivery's id (from the delivery log).", schema: { type: "string" } }],
          responses: {
            "200": { description: "The delivery after the attempt.", content: json({ type: "object", required: ["delivery"], properties: { delivery: ref("WebhookDelivery") } }) },
            "404": errorResponse("NotFound"),
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/v1/webhook": {
        get: {
          operationId: "getWebhookUrl",
          summary: "The account's webhook URL",
          description: "Jobs submitted without their own webhook_url are reported here.",
          tags: ["Webhooks"],
          responses: { "200": { description: "The URL, or null for none.", content: json(ref("WebhookUrl")) }, ...AUTHENTICATED_ERRORS },
        },
        put: {
          operationId: "setWebhookUrl",
          summary: "Set or clear the account's webhook URL",
          tags: ["Webhooks"],
          requestBody: { required: true, content: json(ref("WebhookUrl"), { webhook_url: "https://example.com/hooks/cutline" }) },
          responses: { "200": { description: "The URL now.", content: json(ref("WebhookUrl")) }, "400": errorResponse("BadRequest"), ...AUTHENTICATED_ERRORS },
        },
      },
      "/v1/webhook/secret": {
        get: {
          operationId: "getWebhookSecret",
          summary: "The account's webhook signing secret",
          description: "Cutline-Signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(key = the secret's UTF-8 bytes, message = \"<t>.<raw body>\")>.",
          tags: ["Webhooks"],
          responses: { "200": { description: "The secret.", content: json(ref("WebhookSecret")) }, ...AUTHENTICATED_ERRORS },
        },
        post: {
          operationId: "rotateWebhookSecret",
          summary: "Replace the account's webhook signing secret",
          description: "Deliveries sent from now on, retries included, are signed with the new secret.",
          tags: ["Webhooks"],
          responses: { "200": { description: "The new secret.", content: json(ref("WebhookSecret")) }, ...AUTHENTICATED_ERRORS },
        },
      },
      "/v1/payments/products": {
        get: {
          operationId: "listProducts",
          summary: "The plans and credit packs on sale, and whether checkout is available",
          description: "checkout_available is false under PAYMENT_PROVIDER=manual: the products are shown, and the operator grants them through the admin API.",
          tags: ["Payments"],
          responses: {
            "200": {
              description: "The products.",
              content: json(ref("Products"), {
                provider: "stripe",
                checkout_available: true,
                products: [{ code: "pack_100", kind: "pack", name: "555 credits", price_minor: 10000, currency: "usd", credits: 555, interval: null, valid_days: 0 }],
              }),
            },
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/v1/payments/checkout": {
        post: {
          operationId: "createCheckout",
          summary: "A hosted checkout page for a pack (one-off) or a plan (subscription)",
          description: "Send the buyer to url; the provider's webhook grants the pack or changes the plan once paid. 400 payments_not_configured under PAYMENT_PROVIDER=manual; 404 product_not_found for a code not on sale.",
          tags: ["Payments"],
          requestBody: { required: true, content: json(ref("CheckoutRequest"), { product_code: "pack_100", success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" }) },
          responses: {
            "200": { description: "The checkout page.", content: json(ref("SessionUrl"), { url: "https://checkout.stripe.com/c/pay/cs_test_a1" }) },
            "400": errorResponse("BadRequest"),
            "404": errorResponse("NotFound"),
            "413": errorResponse("PayloadTooLarge"),
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/v1/payments/portal": {
        post: {
          operationId: "createPortalSession",
          summary: "The provider's customer portal: cards, invoices, cancellation",
          description: "404 payment_customer_not_found before the account's first checkout; 400 payments_not_configured under PAYMENT_PROVIDER=manual.",
          tags: ["Payments"],
          requestBody: { required: true, content: json(ref("PortalRequest"), { return_url: "https://example.com/account" }) },
          responses: {
            "200": { description: "The portal page.", content: json(ref("SessionUrl"), { url: "https://billing.stripe.com/p/session/test_a1" }) },
            "400": errorResponse("BadRequest"),
            "404": errorResponse("NotFound"),
            "413": errorResponse("PayloadTooLarge"),
            ...AUTHENTICATED_ERRORS,
          },
        },
      },
      "/v1/payments/stripe/webhook": {
        post: {
          operationId: "stripeWebhook",
          summary: "Stripe's webhook: payments into ledger operations, once",
          description:
            "Called by Stripe, not by clients: verified with the Stripe-Signature header over the raw body (STRIPE_WEBHOOK_SECRET). checkout.session.completed grants a pack or starts a plan, invoice.paid keeps a renewed plan, customer.subscription.updated/deleted change the plan or fall back to free, charge.refunded flags the pack's purchase. An event delivered again moves nothing (replayed: true); other event types answer 200 and are ignored. Bodies are limited to PAYMENT_WEBHOOK_BYTES_MAX (1 MiB).",
          tags: ["Payments"],
          security: [],
          requestBody: { required: true, content: { "application/json": { schema: { type: "object", description: "A Stripe event." } } } },
          responses: {
            "200": {
              description: "Received: applied, replayed or ignored.",
              content: json({ type: "object", properties: { received: { type: "boolean" }, applied: { type: "boolean" }, replayed: { type: "boolean" } }, required: ["received", "applied", "replayed"] }),
            },
            "400": errorResponse("BadRequest"),
            "413": errorResponse("PayloadTooLarge"),
            "500": errorResponse("Internal"),
          },
        },
      },
      "/v1/quote": {
        post: {
          operationId: "quote",
          summary: "The exact credits an operation costs, before any work",
          description: "Priced at the size the call would process (after the plan's downscaling): a later call captures exactly this amount. JSON names the sizes; the operation's own body is priced as that call would be: an image form or body (`operation=matting|smart_crop`), or a video (`operation=video_matting` with a `video_file` form, or a raw `video/*` body), probed and priced per started second like POST /v1/video/matting, holding nothing.",
          tags: ["Account"],
          requestBody: { required: true, content: json(ref("QuoteRequest"), { operation: "matting", width: 1024, height: 768, size: "full" }) },
          responses: { "200": { description: "The cost.", content: json(ref("Quote"), { credits: 0.5, price_book_version: "2026-11-27-seeds" }) }, "400": errorResponse("BadRequest"), ...AUTHENTICATED_ERRORS },
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
      "/v1/account/settings": {
        get: {
          operationId: "getAccountSettings",
          summary: "The account's settings: how long inputs and results are kept, and what happens when the credits run out",
          tags: ["Account"],
          responses: {
            "200": { description: "The settings.", content: json(ref("AccountSettings"), { retention_hours: 24, zero_retention: false, on_exhausted: "stop", on_exhausted_is_plan_default: true }) },
            ...AUTHENTICATED_ERRORS,
          },
        },
        put: {
          operationId: "updateAccountSettings",
          summary: "Change the account's settings",
          description:
            "retention_hours: 1 to 24 (the default) hours after a job ends, then its input and result are deleted and its result reads result_expired; 0 is zero retention (nothing kept after a synchronous response; asynchronous calls are refused with zero_retention_async). Applies to jobs submitted afterwards. on_exhausted: what happens when the plan's credits run out: stop (402 insufficient_credits) or overage (calls go on, billed at the plan's standard per-credit rate up to its overage cap; refused on a plan without overage); plan returns to the plan's default. Applies from the next call.",
          tags: ["Account"],
          requestBody: { required: true, content: json(ref("AccountSettingsUpdate"), { retention_hours: 1 }) },
          responses: {
            "200": { description: "The settings now.", content: json(ref("AccountSettings"), { retention_hours: 1, zero_retention: false, on_exhausted: "stop", on_exhausted_is_plan_default: true }) },
            "400": errorResponse("BadRequest"),
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
      ...removeBgPaths(),
      ...photoroomPaths(),
    },
    components: {
      securitySchemes: {
        ApiKey: { type: "apiKey", in: "header", name: "X-Api-Key", description: "Your API key." },
        Bearer: { type: "http", scheme: "bearer", description: "Your API key as a bearer token." },
      },
      parameters: { IdempotencyKey: IDEMPOTENCY_KEY },
      schemas: {
        ...REMOVEBG_SCHEMAS,
        ...PHOTOROOM_SCHEMAS,
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
                  on_exhausted: { type: "string", enum: ["stop", "overage"], description: "402 only: the account's choice in force when the credits ran out." },
                  overage_cap_reached: { type: "boolean", description: "402 only: the account continues in overage, but the plan's overage cap for this cycle is reached." },
                  options: {
                    type: "array",
                    description: "402 only: the caller's options. upgrade (hint: where), and overage where the plan offers it (how: the setting that turns it on; rate_cents_per_credit: the plan's standard rate).",
                    items: {
                      type: "object",
                      required: ["option"],
                      properties: { option: { type: "string", enum: ["upgrade", "overage"] }, hint: { type: "string" }, rate_cents_per_credit: { type: "integer" }, how: { type: "string" } },
                    },
                  },
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
            progress: { type: "number", minimum: 0, maximum: 1, description: "How much of the work is done: 0 queued, the worker's stage while running, 1 once succeeded; never decreases." },
            credits_charged: credits("Captured so far"),
            result_url: { type: ["string", "null"], format: "uri", description: "Signed, valid 24 h; null until the job succeeds." },
            error: { oneOf: [{ type: "null" }, ref("JobError")] },
            created_at: { type: ["string", "null"], format: "date-time" },
            processing_time_ms: { type: ["integer", "null"], minimum: 0, description: "Once succeeded: as X-Processing-Time-Ms; null before." },
            queue_time_ms: { type: ["integer", "null"], minimum: 0, description: "Once succeeded: as X-Queue-Time-Ms; null before." },
            inference_time_ms: { type: ["integer", "null"], minimum: 0, description: "Once succeeded: as X-Inference-Time-Ms; null before." },
            frames_done: { type: "integer", minimum: 0, description: "Video jobs only: frames done so far (0 until the worker reports)." },
            frames_total: { type: "integer", minimum: 0, description: "Video jobs only: frames in all (0 until the worker reports)." },
            eta_seconds: { type: "integer", minimum: 0, description: "Video jobs only: the worker's estimate of the seconds left (0 when unknown)." },
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
        WebhookUrl: {
          type: "object",
          required: ["webhook_url"],
          properties: { webhook_url: { type: ["string", "null"], format: "uri", description: "A public https or http URL; null clears it." } },
        },
        Product: {
          type: "object",
          required: ["code", "kind", "name", "price_minor", "currency", "credits", "interval", "valid_days"],
          properties: {
            code: { type: "string", description: "The plan's or pack's code." },
            kind: { type: "string", enum: ["plan", "pack"] },
            name: { type: "string" },
            price_minor: { type: "integer", description: "Price in the currency's smallest unit (cents)." },
            currency: { type: "string", description: "ISO 4217, lower case." },
            credits: credits("Credits the product grants (per cycle for a plan)"),
            interval: { type: ["string", "null"], enum: ["month", "year", null], description: "Plans: how often they renew; packs: null." },
            valid_days: { type: "integer", minimum: 0, description: "Days the credits stay valid; 0: never expire." },
          },
        },
        Products: {
          type: "object",
          required: ["provider", "checkout_available", "products"],
          properties: {
            provider: { type: "string", enum: ["stripe", "manual"] },
            checkout_available: { type: "boolean" },
            products: { type: "array", items: ref("Product") },
          },
        },
        CheckoutRequest: {
          type: "object",
          required: ["product_code", "success_url", "cancel_url"],
          properties: {
            product_code: { type: "string" },
            success_url: { type: "string", format: "uri", description: "Where the provider sends the buyer after paying (http or https)." },
            cancel_url: { type: "string", format: "uri", description: "Where the provider sends a buyer who gives up (http or https)." },
          },
        },
        PortalRequest: { type: "object", required: ["return_url"], properties: { return_url: { type: "string", format: "uri" } } },
        SessionUrl: { type: "object", required: ["url"], properties: { url: { type: "string", format: "uri" } } },
        WebhookSecret: { type: "object", required: ["secret"], properties: { secret: { type: "string", description: "The HMAC key, as its UTF-8 bytes." } } },
        WebhookDelivery: {
          type: "object",
          required: ["id", "job_id", "type", "url", "status", "attempts", "body", "attempt_log"],
          properties: {
            id: { type: "string" },
            job_id: { type: "string" },
            type: { type: "string", examples: ["job.succeeded", "job.failed"] },
            url: { type: "string", format: "uri" },
            status: { type: "string", enum: ["pending", "delivered", "failed"] },
            attempts: { type: "integer", minimum: 0 },
            next_attempt_at: { type: ["string", "null"], format: "date-time", description: "While pending: when the next retry goes." },
            last_status_code: { type: ["integer", "null"] },
            last_error: { type: ["string", "null"] },
            created_at: { type: ["string", "null"], format: "date-time" },
            delivered_at: { type: ["string", "null"], format: "date-time" },
            body: { type: "string", description: "The JSON body sent, exactly as signed." },
            attempt_log: {
              type: "array",
              items: {
                type: "object",
                required: ["attempt", "attempted_at", "status_code", "error", "duration_ms"],
                properties: {
                  attempt: { type: "integer", minimum: 1 },
                  attempted_at: { type: ["string", "null"], format: "date-time" },
                  status_code: { type: ["integer", "null"] },
                  error: { type: ["string", "null"] },
                  duration_ms: { type: "integer", minimum: 0 },
                },
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
        AccountSettings: {
          type: "object",
          required: ["retention_hours", "zero_retention", "on_exhausted", "on_exhausted_is_plan_default"],
          properties: {
            retention_hours: { type: "integer", minimum: 0, maximum: 24, description: "Hours inputs and results are kept after a job ends; 0: zero retention." },
            zero_retention: { type: "boolean", description: "retention_hours is 0: nothing is kept after a synchronous response." },
            on_exhausted: { type: "string", enum: ["stop", "overage"], description: "When the plan's credits run out: stop (402) or continue in overage at the plan's standard rate." },
            on_exhausted_is_plan_default: { type: "boolean", description: "The account made no choice: the plan's default applies." },
          },
        },
        AccountSettingsUpdate: {
          type: "object",
          additionalProperties: false,
          properties: {
            retention_hours: { type: "integer", minimum: 0, maximum: 24, description: "0 (zero retention) to 24 (RETENTION_HOURS_MAX)." },
            on_exhausted: { type: "string", enum: ["stop", "overage", "plan"], description: "plan: back to the plan's default. overage is refused on a plan without overage." },
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
              description: "How many more of each reference operation the available credits buy, from the active price book: matting per size tier, smart_crop, upscale, and video_matting per second by resolution and at quality best.",
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
        PaymentRequired: { description: "Not enough credits (insufficient_credits): the balance, the cost, how to top up, and the options: upgrade, or continue in overage.", content: json(ref("Error")) },
        Forbidden: { description: "A result URL that was tampered with (result_url_invalid) or has expired (result_url_expired).", content: json(ref("Error")) },
        NotFound: { description: "No such route (not_found) or resource (job_not_found, ...).", content: json(ref("Error")) },
        PayloadTooLarge: { description: "The upload, or the image at image_url, exceeds the plan's or the server's byte limit (too_many_bytes, image_url_too_large); the message names the limit.", content: json(ref("Error")) },
        IdempotencyConflict: { description: "The Idempotency-Key was used with another body.", content: json(ref("Error")) },
        Unprocessable: {
          description: "The Idempotency-Key was used with another body (idempotency_key_reused), or image_url / bg_image_url could not be fetched (image_url_unreachable: DNS, connection, timeout or a non-2xx answer, named in the message).",
          content: json(ref("Error")),
        },
        TooManyRequests: {
          description: "A plan limit: rate_limited, concurrency_limited, read_rate_limited, monthly_quota_exceeded. Retry after Retry-After seconds.",
          headers: {
            "Retry-After": { description: "Seconds to wait (for monthly_quota_exceeded: until the billing cycle renews).", schema: { type: "integer" } },
            "X-RateLimit-Limit": IMAGE_HEADERS["X-RateLimit-Limit"]!,
            "X-RateLimit-Remaining": IMAGE_HEADERS["X-RateLimit-Remaining"]!,
            "X-RateLimit-Reset": IMAGE_HEADERS["X-RateLimit-Reset"]!,
          },
          content: json(ref("Error")),
        },
        Internal: { description: "A server fault (internal); nothing was charged.", content: json(ref("Error")) },
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

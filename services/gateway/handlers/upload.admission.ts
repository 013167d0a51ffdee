import { ConnectError } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { ImageService } from "../../common/gen/cutline/gateway/v1/image_service_pb.ts";
import { JobService } from "../../common/gen/cutline/gateway/v1/job_service_pb.ts";
import { VideoService } from "../../common/gen/cutline/gateway/v1/video_service_pb.ts";
import type { HttpRequest, HttpResponse } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import type { Admission, ImageJobs } from "../image-jobs.ts";
import type { ApiKeyStore } from "../store/api-key.store.ts";

/**
 * Request header naming the admission the server's `admit` hook took for this call. The hook
 * removes any value a client sent, so only the hook's own id ever reaches a handler.
 */
export const ADMISSION_HEADER = "cutline-admission";

/** The RPCs that carry an upload, by path; `slot`: whether the call holds a concurrent-request slot while it runs. */
const UPLOAD_RPCS = new Map<string, { slot: boolean }>([
  [`/${ImageService.typeName}/${ImageService.method.removeBackground.name}`, { slot: true }],
  [`/${ImageService.typeName}/${ImageService.method.smartCrop.name}`, { slot: true }],
  [`/${JobService.typeName}/${JobService.method.submit.name}`, { slot: false }],
  [`/${JobService.typeName}/${JobService.method.submitBatch.name}`, { slot: false }],
  [`/${VideoService.typeName}/${VideoService.method.submitVideo.name}`, { slot: false }],
]);

/** Node's request headers as Fetch Headers (repeated headers joined, as Connect does). */
export function headersOf(request: HttpRequest): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || name.startsWith(":")) continue;
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return headers;
}

/**
 * Admission of upload RPCs on their headers, before the payload is read: the API key is checked
 * and the account's per-minute token and concurrency slot are taken by the server's `admit` hook,
 * so an unauthenticated or over-limit caller is refused without sending its upload. The handler
 * then picks the admission up by the id the hook put in `cutline-admission`; one that arrives
 * without it (an in-memory transport, a server started without the hook) is admitted there.
 */
export class UploadAdmissions {
  readonly #pending = new Map<string, Admission>();

  constructor(
    private readonly apiKeys: ApiKeyStore,
    private readonly imageJobs: ImageJobs,
  ) {}

  /** The server's `admit` hook: undefined lets the call in; a ConnectError is its refusal. */
  readonly admit = async (request: HttpRequest, response: HttpResponse): Promise<ConnectError | undefined> => {
    delete request.headers[ADMISSION_HEADER];
    const rpc = UPLOAD_RPCS.get((request.url ?? "").split("?")[0] ?? "");
    if (rpc === undefined) return undefined;
    try {
      const owner = await authenticate(this.apiKeys, headersOf(request));
      const admission = await this.imageJobs.admit(owner, rpc);
      const id = randomUUID();
      this.#pending.set(id, admission);
      request.headers[ADMISSION_HEADER] = id;
      // Whatever becomes of the call (refused, reset mid-upload, answered), the slot is freed with it.
      response.once("close", () => {
        this.#pending.delete(id);
        admission.release();
      });
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    }
  };

  /** The handler's side: the admission the hook took for this call, or a new one taken now. */
  async take(headers: Headers, options: { slot: boolean }): Promise<Admission> {
    const id = headers.get(ADMISSION_HEADER);
    const admitted = id ? this.#pending.get(id) : undefined;
    if (admitted) {
      this.#pending.delete(id!);
      // The key is checked again, as every handler does: the admission must be this caller's.
      const owner = await authenticate(this.apiKeys, headers);
      if (owner.keyId === admitted.owner.keyId) return admitted;
      admitted.release();
    }
    return this.imageJobs.admit(await authenticate(this.apiKeys, headers), options);
  }
}

// The typed API: every call goes through the generated Connect clients over Connect-Web (same
// origin as the page, so no CORS). The transport speaks gRPC-Web, binary: an upload travels as its
// bytes (not base64 JSON), and a refusal the app shows as part of the product (out of credits,
// rate limited, a service this server lacks) arrives in the trailers of a 200 response, so the
// browser logs no failed request for an answer the app handles. The API key the person signed in with is kept in session
// storage (gone when the tab closes) and sent as X-Api-Key by one interceptor.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountService } from "../../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { JobService } from "../../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { KeyService } from "../../services/common/gen/cutline/gateway/v1/key_service_pb.ts";
import { PaymentService } from "../../services/common/gen/cutline/gateway/v1/payment_service_pb.ts";
import { VideoService } from "../../services/common/gen/cutline/gateway/v1/video_service_pb.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../services/common/gen/grpc/health/v1/health_pb.ts";

const API_KEY_STORAGE = "cutline.apiKey";

export function storedApiKey(): string | undefined {
  return sessionStorage.getItem(API_KEY_STORAGE) ?? undefined;
}

export function storeApiKey(key: string | undefined): void {
  if (key === undefined) sessionStorage.removeItem(API_KEY_STORAGE);
  else sessionStorage.setItem(API_KEY_STORAGE, key);
}

export interface Api {
  readonly transport: Transport;
  readonly jobs: Client<typeof JobService>;
  readonly account: Client<typeof AccountService>;
  readonly keys: Client<typeof KeyService>;
  readonly payments: Client<typeof PaymentService>;
  readonly video: Client<typeof VideoService>;
  readonly health: Client<typeof Health>;
}

/** Clients that authenticate as `apiKey` against the gateway that served this page. */
export function createApi(apiKey: string, baseUrl: string = window.location.origin): Api {
  const withKey: Interceptor = (next) => (request) => {
    request.header.set("x-api-key", apiKey);
    return next(request);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [withKey] });
  return {
    transport,
    jobs: createClient(JobService, transport),
    account: createClient(AccountService, transport),
    keys: createClient(KeyService, transport),
    payments: createClient(PaymentService, transport),
    video: createClient(VideoService, transport),
    health: createClient(Health, transport),
  };
}

/**
 * Whether this gateway serves `service` (a full name such as cutline.gateway.v1.VideoService):
 * the server registers every service it serves with its health checker, which answers NOT_FOUND
 * for the others. A feature whose service is absent is shown as not available here.
 */
export async function serves(api: Api, service: string): Promise<boolean> {
  try {
    const { status } = await api.health.check({ service });
    return status === HealthCheckResponse_ServingStatus.SERVING || status === HealthCheckResponse_ServingStatus.NOT_SERVING;
  } catch {
    return false;
  }
}

export const VIDEO_SERVICE = VideoService.typeName;
export const PAYMENT_SERVICE = PaymentService.typeName;

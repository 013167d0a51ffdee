// Mesh mode: the four services as separate processes against real Postgres and real NATS
// JetStream, each on its own port. Runs the same end-to-end scenario as single-node mode, then
// proves interop: every service answers a stock @grpc/grpc-js client whose protos are loaded
// from proto/ by @grpc/proto-loader (independent of our generated code) and a generated
// Connect client; and SIGTERM drains every process to a clean exit.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SERVICES, type ServiceName } from "../scripts/mesh-processes.ts";
import { BillingService, Operation } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { InferenceService } from "../services/common/gen/cutline/inference/v1/inference_service_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { Health, ServingStatus } from "../services/common/health.ts";
import { serviceTransport } from "../services/common/runtime.ts";
import { SERVICE_TOKEN_HEADER } from "../services/common/service-auth.ts";
import { runEndToEndScenario, testPhoto } from "./end-to-end.scenario.ts";
import { meshBackends, meshFixture } from "./mesh.testing.ts";

const PROTO_ROOT = join(import.meta.dirname, "..", "proto");
const API_KEY = "cl_mesh_test_key";

function grpcPackage(file: string): any {
  return grpc.loadPackageDefinition(
    protoLoader.loadSync(file, { includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: true }),
  );
}

function unary<T>(client: any, method: string, request: object, metadata = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) => client[method](request, metadata, (error: Error | null, response: T) => (error ? reject(error) : resolve(response))));
}

const backends = await meshBackends();

describe("mesh: four processes over gRPC, Postgres and NATS JetStream", { skip: backends.skip }, () => {
  const fixture = meshFixture(backends, { prefix: "mesh", env: { CUTLINE_API_KEY: API_KEY } });
  const { output } = fixture;

  test("end to end through the gateway over gRPC (h2c)", async () => {
    await runEndToEndScenario(fixture.mesh.urls.gateway, API_KEY, createGrpcTransport({ baseUrl: fixture.mesh.urls.gateway }));
  });

  test("every service answers a stock grpc-js health check", async () => {
    const { grpc: health } = grpcPackage("grpc/health/v1/health.proto");
    for (const name of SERVICES) {
      const client = new health.health.v1.Health(new URL(fixture.mesh.urls[name]).host, grpc.credentials.createInsecure());
      const response = await unary<{ status: string }>(client, "Check", { service: "" });
      assert.equal(response.status, "SERVING", name);
      client.close();
    }
  });

  test("every service answers its own RPCs from a stock grpc-js client", async () => {
    const insecure = grpc.credentials.createInsecure();
    const host = (name: ServiceName) => new URL(fixture.mesh.urls[name]).host;
    const photo = Buffer.from(await testPhoto());

    const gateway = grpcPackage("cutline/gateway/v1/image_service.proto").cutline.gateway.v1;
    const images = new gateway.ImageService(host("gateway"), insecure);
    const metadata = new grpc.Metadata();
    metadata.set("x-api-key", API_KEY);
    const cutout = await unary<{ job_id: string; content_type: string; credits_charged_millicredits: string }>(
      images, "RemoveBackground", { image: photo, idempotency_key: "grpc-js" }, metadata,
    );
    assert.equal(cutout.content_type, "image/png");
    assert.equal(cutout.credits_charged_millicredits, "500");

    // Internal services want the mesh's shared token, as gRPC metadata.
    const internal = new grpc.Metadata();
    internal.set(SERVICE_TOKEN_HEADER, fixture.mesh.serviceToken);
    const billing = new (grpcPackage("cutline/billing/v1/billing_service.proto").cutline.billing.v1.BillingService)(host("billing"), insecure);
    const quote = await unary<{ cost_millicredits: string }>(billing, "Quote", { account_id: "default", operation: "OPERATION_REMOVE_BACKGROUND", pixels: 2_000_000 }, internal);
    assert.equal(quote.cost_millicredits, "1000");

    const orchestrator = new (grpcPackage("cutline/orchestrator/v1/orchestrator_service.proto").cutline.orchestrator.v1.OrchestratorService)(host("orchestrator"), insecure);
    const job = await unary<{ job: { status: string; charged_millicredits: string } }>(orchestrator, "GetJob", { job_id: cutout.job_id }, internal);
    assert.deepEqual([job.job.status, job.job.charged_millicredits], ["JOB_STATUS_SUCCEEDED", "500"]);

    const inference = new (grpcPackage("cutline/inference/v1/inference_service.proto").cutline.inference.v1.InferenceService)(host("inference"), insecure);
    const segmented = await unary<{ content_type: string; width: number; height: number; model: string }>(inference, "Segment", {
      image: photo,
      options: { format: "OUTPUT_FORMAT_MASK" },
    }, internal);
    assert.deepEqual([segmented.content_type, segmented.width, segmented.height], ["image/png", 320, 240]);
    assert.match(segmented.model, /^isnet-/);
    for (const client of [images, billing, orchestrator, inference]) client.close();
  });

  test("every internal service answers a generated Connect client (Connect, gRPC-Web and gRPC)", async () => {
    const headers = { [SERVICE_TOKEN_HEADER]: fixture.mesh.serviceToken };
    const billing = createClient(BillingService, createConnectTransport({ baseUrl: fixture.mesh.urls.billing, httpVersion: "1.1" }));
    assert.equal((await billing.quote({ accountId: "default", operation: Operation.REMOVE_BACKGROUND, pixels: 100n }, { headers })).costMillicredits, 500n);
    const orchestrator = createClient(OrchestratorService, createGrpcWebTransport({ baseUrl: fixture.mesh.urls.orchestrator, httpVersion: "1.1" }));
    await assert.rejects(orchestrator.getJob({ jobId: "00000000-0000-0000-0000-000000000000" }, { headers }), /not found/);
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: fixture.mesh.urls.inference }));
    const response = await inference.segment({ image: await testPhoto(), options: { format: OutputFormat.MASK } }, { headers });
    assert.equal(response.width, 320);
  });

  test("internal services refuse a call without the service token, or with a wrong one; Health still answers", async () => {
    const wrongToken = "0".repeat(64);
    const calls: Record<string, (token: string | undefined) => Promise<unknown>> = {
      billing: (token) => createClient(BillingService, serviceTransport(fixture.mesh.urls.billing, { token })).quote({ accountId: "default", operation: Operation.REMOVE_BACKGROUND, pixels: 100n }),
      orchestrator: (token) => createClient(OrchestratorService, serviceTransport(fixture.mesh.urls.orchestrator, { token })).getJob({ jobId: "00000000-0000-0000-0000-000000000000" }),
      inference: (token) => createClient(InferenceService, serviceTransport(fixture.mesh.urls.inference, { token })).segment({ image: new Uint8Array(8) }),
    };
    for (const [name, call] of Object.entries(calls)) {
      for (const [token, reason] of [[undefined, "service_token_missing"], [wrongToken, "service_token_invalid"]] as const) {
        await assert.rejects(call(token), (error: unknown) => {
          const connectError = ConnectError.from(error);
          assert.equal(connectError.code, Code.Unauthenticated, `${name} without a valid token: ${connectError.message}`);
          assert.equal(connectError.metadata.get("cutline-reason"), reason, name);
          return true;
        });
      }
      const health = createClient(Health, createGrpcTransport({ baseUrl: fixture.mesh.urls[name as ServiceName] }));
      assert.equal((await health.check({ service: "" })).status, ServingStatus.SERVING, `${name}: Health/Check without a token`);
    }
  });

  test("SIGTERM drains every process to a clean exit", async () => {
    const codes = await fixture.mesh.stop();
    assert.deepEqual(codes, { billing: 0, orchestrator: 0, inference: 0, gateway: 0 }, output.slice(-20).join("\n"));
  });
});

// The server test/hostile-client.spec.ts attacks, in a process of its own so that a crash is an
// exit the test sees, not a test runner dying. The real common server with real Health, one small
// RPC service and one REST route that reads its body, and short limits (given by the spec) so that
// timeouts fire within the suite's time. Prints {"url": ...} once listening; logs go to stdout as JSON lines.
import { create } from "@bufbuild/protobuf";
import { GetJobResponseSchema, JobService, WatchJobResponseSchema } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { createLogger } from "../services/common/logging.ts";
import { startServiceServer } from "../services/common/server.ts";

// The limits come as JSON in the first argument, from the spec that asserts against them.
const limits = JSON.parse(process.argv[2] ?? "{}") as Record<string, number>;

const health = new HealthRegistry();
const server = await startServiceServer({
  name: "hostile-target",
  host: "127.0.0.1",
  port: 0,
  log: createLogger("hostile-target", "warn"),
  health,
  ...limits,
  routes: (router) =>
    router.service(JobService, {
      getJob: (request) => create(GetJobResponseSchema, { job: { id: request.jobId } }),
      async *watchJob(request) {
        yield create(WatchJobResponseSchema, { job: { id: request.jobId } });
      },
    }),
  httpRoutes: async (request, response) => {
    if (!request.url?.startsWith("/v1/echo")) return false;
    let bytes = 0;
    for await (const chunk of request) bytes += (chunk as Buffer).length;
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ bytes }));
    return true;
  },
  // Admits everything: the hook's path runs for every request the suite sends.
  admit: async () => undefined,
});
health.setAllServing();
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
process.once("SIGTERM", () => void server.close().then(() => process.exit(0)));

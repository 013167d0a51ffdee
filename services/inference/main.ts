// Inference as its own process (mesh mode): the JetStream consumer plus the direct gRPC API.
// Wiring only. The server (health, metrics) starts before the model loads, so probes and
// Prometheus see the pod while it loads (minutes on a cold GPU node) and a SIGTERM then drains.
// Health is SERVING while the model is loaded and verified (its warm-up runs follow) and NATS is connected,
// NOT_SERVING while either is missing. A model that cannot load (CUDA absent with only `cuda` in
// INFERENCE_EXECUTION_PROVIDERS, say) fails the process: it stops, exits 1 and says why.
import { InferenceService } from "../common/gen/cutline/inference/v1/inference_service_pb.ts";
import { HealthRegistry } from "../common/health.ts";
import { startTracing } from "../common/tracing.ts";
import { createLogger } from "../common/logging.ts";
import { runMain } from "../common/runtime.ts";
import { requireServiceToken, serviceAuthInterceptor, serviceTokenAdmission } from "../common/service-auth.ts";
import { serverOptionsOf, startServiceServer } from "../common/server.ts";
import { createInferenceHandlers, createSegmentationEngine, startSegmentConsumer, videoMattingRunnerOf } from "./index.ts";
import { consumerRetryOptionsOf, loadInferenceServiceConfig, tasksInFlightMaxOf } from "./inference.config.ts";
import { openPorts } from "../common/wiring.ts";
import { logMediaBinaries, mediaBinaries } from "../common/video/ffmpeg-binaries.ts";

await runMain("inference", async () => {
  const config = loadInferenceServiceConfig();
  const serviceToken = requireServiceToken(config.CUTLINE_SERVICE_TOKEN);
  const tracing = await startTracing(config, "inference");
  const log = createLogger("inference", config.LOG_LEVEL);
  const health = new HealthRegistry();
  const ports = await openPorts(config, log);
  const engine = await createSegmentationEngine(config, log);
  logMediaBinaries(config, log);
  const setHealth = health.follow(["model", "nats"]);
  const server = await startServiceServer({
    name: "inference",
    host: config.HOST,
    port: config.PORT,
    log,
    health,
    routes: (router) => router.service(InferenceService, createInferenceHandlers(engine)),
    admit: serviceTokenAdmission(serviceToken),
    interceptors: [serviceAuthInterceptor(serviceToken)],
    readBytesMax: config.IMAGE_BYTES_MAX + 1024 * 1024,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    ...serverOptionsOf(config),
  });
  const unwatch = ports.watchConnection((connected) => setHealth("nats", connected));
  // Resolved and logged once at start (logMediaBinaries); a node without ffmpeg still serves images, and its video tasks fail.
  const binaries = () => mediaBinaries({ FFMPEG_PATH: config.FFMPEG_PATH, FFPROBE_PATH: config.FFPROBE_PATH }, log);
  // Consuming starts once the engine is ready (startSegmentConsumer waits for it).
  const consumer = startSegmentConsumer({
    engine,
    ...ports,
    log,
    ...consumerRetryOptionsOf(config),
    stageProgressMsMin: config.INFERENCE_STAGE_PROGRESS_MS_MIN,
    inFlightMax: tasksInFlightMaxOf(config),
    videoConcurrency: config.VIDEO_CONCURRENCY,
    video: { run: videoMattingRunnerOf(engine, binaries) },
  });
  const failed = consumer.then(
    () => {
      setHealth("model", true);
      return new Promise<never>(() => {});
    },
    (error: unknown) => {
      throw new Error(`the model could not be made ready: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    },
  );
  return {
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    failed,
    async stop() {
      unwatch();
      await server.close();
      await (await consumer.catch(() => undefined))?.drain();
      await engine.close();
      await ports.close();
      await tracing.shutdown();
    },
  };
});

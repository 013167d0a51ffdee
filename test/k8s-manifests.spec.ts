// Renders the kustomize overlays (k8s/) and the compose file (deploy/) and checks what a cluster
// would not tell us until too late: gRPC probes on the served port, non-root and read-only pods,
// resource limits, graceful-shutdown arithmetic, GPU scheduling only in the gpu overlay, env
// vars that the services really read (and that parse), KEDA pointed at the real work-queue names.
// Each rendered object is also checked against the Kubernetes / KEDA OpenAPI schemas
// (kubernetes-models). Rendering uses `kustomize build` or `kubectl kustomize`; without either the
// rendering tests are skipped, saying so.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { cpSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { admits, type PolicyObject, selects, type Source, root, SERVICES, type ServiceName, DEFAULT_PORTS, RUN_MAIN_MARGIN_MS, SHUTDOWN_TIMEOUT_MS_DEFAULT, METRICS_PORT_DEFAULT, type Probe, type K8sObject, type DeploymentObject, skipRendering, render, renderComposition, validateSchemas, configOf, cpuCores, bytes, byKind, one, containerOf, imageParts, composeServices, grpcPort, environmentOf, secretOf } from "./k8s.testing.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { createLogger } from "../services/common/logging.ts";
import { startServiceServer } from "../services/common/server.ts";
import { imageLimitsConfigSpec } from "../services/common/images/image-limits.ts";

// ---- the checks shared by every overlay ---------------------------------------------------------


/** The gateway prices and refuses uploads by the limits inference enforces: both pods see the same values, all set. */
function checkImageLimitsShared(objects: K8sObject[], deployments: Map<ServiceName, DeploymentObject>, overlay: string): void {
  const gateway = environmentOf(objects, containerOf(deployments.get("gateway")!));
  const inference = environmentOf(objects, containerOf(deployments.get("inference")!));
  for (const name of Object.keys(imageLimitsConfigSpec)) {
    const value = gateway.get(name)?.value;
    assert.ok(value !== undefined && value !== "", `${overlay}: the gateway gets ${name}`);
    assert.equal(inference.get(name)?.value, value, `${overlay}: inference gets the gateway's ${name}`);
  }
}

async function checkMesh(objects: K8sObject[], overlay: string): Promise<Map<ServiceName, DeploymentObject>> {
  validateSchemas(objects);
  const namespaces = byKind(objects, "Namespace");
  assert.equal(namespaces.length, 1);
  for (const object of objects) if (object.kind !== "Namespace") assert.equal(object.metadata.namespace, namespaces[0]!.metadata.name, `${object.kind} ${object.metadata.name} namespace`);
  assert.equal(byKind(objects, "Secret").length, 0, `${overlay}: renders no Secret (values never live in git)`);
  assert.deepEqual(byKind(objects, "Deployment").map((object) => object.metadata.name).sort(), [...SERVICES].sort());

  const deployments = new Map<ServiceName, DeploymentObject>();
  for (const name of SERVICES) {
    const deployment = one<DeploymentObject>(objects, "Deployment", name);
    deployments.set(name, deployment);
    const pod = deployment.spec.template.spec;
    const container = containerOf(deployment);
    const port = grpcPort(container);
    const where = `${overlay}/${name}`;

    assert.deepEqual(container.command, ["node", "--import", "tsx", `services/${name}/main.ts`], `${where}: command`);
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
      assert.ok(container[probe]?.grpc, `${where}: ${probe} is a native gRPC probe`);
      assert.equal(container[probe]!.grpc!.port, port, `${where}: ${probe} on the port named grpc`);
    }
    const startupBudgetS = (probe: Probe & { periodSeconds?: number; failureThreshold?: number }) => (probe.periodSeconds ?? 10) * (probe.failureThreshold ?? 3);
    if (name === "inference") assert.ok(startupBudgetS(container.startupProbe!) >= 300, `${where}: startupProbe allows at least 5 min for model load`);

    // Security.
    assert.equal(pod.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
    assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, `${where}: numeric non-root runAsUser`);
    assert.equal(pod.securityContext?.seccompProfile?.type, "RuntimeDefault", `${where}: seccomp`);
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
    assert.deepEqual(container.securityContext?.capabilities?.drop, ["ALL"], `${where}: drop ALL capabilities`);
    assert.equal(pod.automountServiceAccountToken, false, `${where}: no service account token`);
    assert.equal(pod.enableServiceLinks, false, `${where}: no service-link env vars (INFERENCE_PORT, NATS_PORT, ...)`);
    const emptyDirs = new Set((pod.volumes ?? []).filter((volume) => volume.emptyDir).map((volume) => volume.name));
    const writable = new Set((container.volumeMounts ?? []).filter((mount) => emptyDirs.has(mount.name)).map((mount) => mount.mountPath));
    assert.ok(writable.has("/tmp"), `${where}: /tmp is an emptyDir (tsx cache, ffmpeg scratch)`);

    // Resources.
    const { requests = {}, limits = {} } = container.resources ?? {};
    for (const resource of ["cpu", "memory"]) {
      assert.ok(requests[resource] !== undefined, `${where}: requests.${resource}`);
      assert.ok(limits[resource] !== undefined, `${where}: limits.${resource}`);
    }
    assert.ok(cpuCores(requests.cpu) <= cpuCores(limits.cpu), `${where}: cpu request <= limit`);
    assert.ok(bytes(requests.memory) <= bytes(limits.memory), `${where}: memory request <= limit`);

    // Environment: only variables the service reads, each with a value it accepts.
    const environment = environmentOf(objects, container);
    const config = await configOf(name);
    for (const [variable, { value }] of environment) {
      assert.ok(config.known.has(variable), `${where}: ${variable} is not read by ${name} (per ${config.source})`);
      const spec = config.variables.get(variable);
      if (spec && value !== undefined && value !== "") assert.doesNotThrow(() => spec.parse(value), `${where}: ${variable}=${value} is rejected by ${name}'s config`);
    }
    assert.equal(environment.get("PORT")?.value, String(port), `${where}: PORT = the grpc container port`);
    assert.equal(environment.get("HOST")?.value, "0.0.0.0", `${where}: HOST listens beyond loopback`);
    const dataDir = environment.get("CUTLINE_DATA_DIR")?.value;
    assert.ok(dataDir !== undefined && writable.has(dataDir), `${where}: CUTLINE_DATA_DIR (${dataDir}) is a writable emptyDir`);
    for (const [variable, { secret }] of environment) {
      if (!secret) continue;
      assert.equal(secret.name, secretOf(variable, name), `${where}: ${variable} from the Secret ${secretOf(variable, name)}`);
      assert.equal(secret.key, variable, `${where}: secret key named after the variable`);
    }
    if (name !== "inference") assert.equal(environment.get("DATABASE_URL")?.secret?.name, `cutline-db-${name}`, `${where}: DATABASE_URL from its own database role's Secret`);
    if (name !== "inference") assert.equal(environment.get("MIGRATE_ON_START")?.value, "false", `${where}: migrations run in the pre-deploy Job, not at start`);
    // Each main refuses to start without the service token; it is a secret, never a literal.
    assert.ok(environment.get("CUTLINE_SERVICE_TOKEN")?.secret, `${where}: CUTLINE_SERVICE_TOKEN comes from the Secret`);
    assert.ok(environment.get("NATS_URL")?.value?.startsWith("nats://"), `${where}: NATS_URL`);
    // Client URLs name a Service of this mesh on its port.
    for (const [variable, target] of [["BILLING_URL", "billing"], ["ORCHESTRATOR_URL", "orchestrator"], ["INFERENCE_URL", "inference"]] as const) {
      const value = environment.get(variable)?.value;
      if (value === undefined) continue;
      const service = one(objects, "Service", target);
      assert.equal(value, `http://${target}:${service.spec.ports[0].port}`, `${where}: ${variable}`);
    }

    // Graceful shutdown: preStop sleep, then SIGTERM, then at most SHUTDOWN_TIMEOUT_MS + runMain's margin.
    const preStop = container.lifecycle?.preStop;
    const sleepS = preStop?.sleep?.seconds ?? (preStop?.exec?.command[0] === "sleep" ? Number(preStop.exec.command[1]) : Number.NaN);
    assert.ok(sleepS > 0, `${where}: preStop sleeps so endpoints drop before SIGTERM`);
    const shutdownMs = Number(environment.get("SHUTDOWN_TIMEOUT_MS")?.value ?? SHUTDOWN_TIMEOUT_MS_DEFAULT);
    const graceS = pod.terminationGracePeriodSeconds ?? 30;
    assert.ok(graceS * 1000 > sleepS * 1000 + shutdownMs + RUN_MAIN_MARGIN_MS, `${where}: terminationGracePeriodSeconds ${graceS} s > preStop ${sleepS} s + SHUTDOWN_TIMEOUT_MS ${shutdownMs} ms + ${RUN_MAIN_MARGIN_MS} ms`);

    // Prometheus scrape annotations on the pod.
    const annotations = deployment.spec.template.metadata.annotations ?? {};
    assert.equal(annotations["prometheus.io/scrape"], "true", `${where}: prometheus.io/scrape`);
    // Metrics have their own port (METRICS_PORT), never the public one.
    const metricsPort = container.ports?.find((candidate) => candidate.name === "metrics")?.containerPort;
    assert.equal(metricsPort, Number(environment.get("METRICS_PORT")?.value ?? METRICS_PORT_DEFAULT), `${where}: a container port named metrics = METRICS_PORT`);
    assert.notEqual(metricsPort, port, `${where}: metrics are not on the grpc port`);
    assert.equal(annotations["prometheus.io/port"], String(metricsPort), `${where}: prometheus.io/port is the metrics port`);
    assert.equal(annotations["prometheus.io/path"], "/metrics", `${where}: prometheus.io/path`);

    // Service: h2c on the named port, selecting these pods.
    const service = one(objects, "Service", name);
    assert.equal(service.spec.ports.length, 1);
    const servicePort = service.spec.ports[0];
    assert.equal(servicePort.name, "grpc", `${where}: Service port named grpc`);
    assert.equal(servicePort.targetPort, "grpc", `${where}: Service targets the named port`);
    assert.equal(servicePort.appProtocol, "kubernetes.io/h2c", `${where}: appProtocol h2c`);
    assert.equal(servicePort.port, port, `${where}: Service port = container port`);
    for (const [label, value] of Object.entries(service.spec.selector as Record<string, string>)) {
      assert.equal(deployment.spec.template.metadata.labels[label], value, `${where}: Service selector ${label}`);
    }
    // PodDisruptionBudget.
    const budget = one(objects, "PodDisruptionBudget", name);
    assert.deepEqual(budget.spec.selector.matchLabels, deployment.spec.selector.matchLabels, `${where}: PDB selects the Deployment`);
  }

  // One image for gateway, billing, orchestrator (without onnxruntime or the model), another for inference.
  const images = new Set(["gateway", "billing", "orchestrator"].map((name) => containerOf(deployments.get(name as ServiceName)!).image));
  assert.equal(images.size, 1, `${overlay}: gateway, billing and orchestrator share one image: ${[...images].join(", ")}`);
  const inferenceImage = containerOf(deployments.get("inference")!).image;
  for (const image of [...images, inferenceImage]) assert.match(image, /:[\w.-]+$/, `${overlay}: image ${image} has a tag`);
  assert.notEqual(imageParts(inferenceImage).name, imageParts([...images][0]!).name, `${overlay}: inference runs its own image, not the services one`);
  for (const name of ["gateway", "billing", "orchestrator"] as const) {
    const pod = deployments.get(name)!.spec.template.spec;
    assert.ok(!containerOf(deployments.get(name)!).resources?.limits?.["nvidia.com/gpu"], `${overlay}/${name}: no GPU`);
    assert.ok(!(pod.tolerations ?? []).some((toleration) => toleration.key === "nvidia.com/gpu"), `${overlay}/${name}: no GPU toleration`);
  }
  checkImageLimitsShared(objects, deployments, overlay);
  return deployments;
}

// ---- NetworkPolicies ------------------------------------------------------------------------------

function checkNetworkPolicies(objects: K8sObject[], deployments: Map<ServiceName, DeploymentObject>, overlay: string): void {
  const policies = byKind<PolicyObject>(objects, "NetworkPolicy");
  const defaultDeny = policies.filter((policy) => Object.keys(policy.spec.podSelector.matchLabels ?? {}).length === 0);
  assert.equal(defaultDeny.length, 1, `${overlay}: one policy selects every pod of the namespace`);
  assert.deepEqual(defaultDeny[0]!.spec.policyTypes, ["Ingress"], `${overlay}: default deny is for ingress`);
  assert.equal((defaultDeny[0]!.spec.ingress ?? []).length, 0, `${overlay}: default deny admits nothing`);

  const namespace = (name: string) => ({ "kubernetes.io/metadata.name": name });
  const podOf = (name: ServiceName) => ({ namespace: namespace("cutline"), pod: deployments.get(name)!.spec.template.metadata.labels });
  const sources: Record<string, Source> = {
    gateway: podOf("gateway"),
    billing: podOf("billing"),
    orchestrator: podOf("orchestrator"),
    inference: podOf("inference"),
    "another pod of the namespace": { namespace: namespace("cutline"), pod: { "app.kubernetes.io/name": "debug" } },
    "a pod elsewhere": { namespace: namespace("default"), pod: { "app.kubernetes.io/name": "gateway" } },
    "an ingress controller": { namespace: namespace("ingress-nginx"), pod: { "app.kubernetes.io/name": "ingress-nginx" } },
    prometheus: { namespace: namespace("monitoring"), pod: { "app.kubernetes.io/name": "prometheus" } },
    "outside the cluster": "outside",
  };
  const everyone = Object.keys(sources).sort();
  const expected: Record<ServiceName, { grpc: string[]; metrics: string[] }> = {
    gateway: { grpc: everyone, metrics: ["prometheus"] },
    billing: { grpc: ["gateway", "orchestrator"], metrics: ["prometheus"] },
    orchestrator: { grpc: ["gateway"], metrics: ["prometheus"] },
    // No service calls InferenceService; its work comes from the NATS work queue, which it pulls.
    inference: { grpc: [], metrics: ["prometheus"] },
  };
  for (const name of SERVICES) {
    const deployment = deployments.get(name)!;
    const portNames = new Set((containerOf(deployment).ports ?? []).map((port) => port.name));
    for (const policy of policies) {
      for (const rule of policy.spec.ingress ?? []) {
        for (const { port } of rule.ports ?? []) {
          if (selects(policy.spec.podSelector, deployment.spec.template.metadata.labels)) assert.ok(portNames.has(String(port)), `${overlay}: policy ${policy.metadata.name} names port ${port}, which ${name} does not have`);
        }
      }
    }
    for (const port of ["grpc", "metrics"] as const) {
      const admitted = everyone.filter((source) => admits(policies, deployment.spec.template.metadata.labels, port, sources[source]!));
      assert.deepEqual(admitted, [...expected[name][port]].sort(), `${overlay}: who may connect to ${name}'s ${port} port`);
    }
  }
  for (const policy of policies) assert.deepEqual(policy.spec.policyTypes, ["Ingress"], `${overlay}: ${policy.metadata.name} restricts ingress only (egress comes with the operations issue)`);
}

/** The work queue's real names, from the NATS adapter's source, so a rename breaks this test, not scaling. */
function workQueueNames(prefix: string): { stream: string; videoStream: string; consumers: string[] } {
  const adapter = join(root, "services/common/adapters/work-queue.nats.ts");
  if (existsSync(adapter)) {
    const source = readFileSync(adapter, "utf8");
    assert.match(source, /const stream = `\$\{options\.namePrefix\}_work`/, "work-queue.nats.ts: stream is `<prefix>_work`");
    assert.match(source, /durable_name: lane/, "work-queue.nats.ts: one durable consumer per lane, named after it");
    assert.match(source, /const LANES: readonly Priority\[\] = \["high", "normal"\]/, "work-queue.nats.ts: lanes high and normal");
  }
  const ports = join(root, "services/common/adapters/index.ts");
  if (existsSync(ports)) {
    assert.match(readFileSync(ports, "utf8"), /namePrefix: `\$\{namePrefix\}_video`/, "adapters/index.ts: the video queue is a work queue under `<prefix>_video`");
  }
  return { stream: `${prefix}_work`, videoStream: `${prefix}_video_work`, consumers: ["high", "normal"] };
}

function checkScaledObject(objects: K8sObject[], overlay: string): K8sObject {
  const scaledObject = one(objects, "ScaledObject", "inference");
  assert.ok(!byKind(objects, "HorizontalPodAutoscaler").some((hpa) => hpa.spec.scaleTargetRef.name === "inference"), `${overlay}: no HPA of inference beside KEDA (KEDA owns its own)`);
  assert.equal(scaledObject.spec.scaleTargetRef.name, "inference");
  assert.ok(scaledObject.spec.minReplicaCount >= 2, `${overlay}: at least 2 inference replicas`);
  assert.ok(scaledObject.spec.fallback.replicas >= 2, `${overlay}: the fallback keeps 2 replicas too`);
  const common = one(objects, "Deployment", "inference") as DeploymentObject;
  const environment = environmentOf(objects, containerOf(common));
  const prefix = environment.get("NATS_NAME_PREFIX")?.value ?? "cutline";
  const { stream, videoStream, consumers } = workQueueNames(prefix);
  const natsHost = new URL(environment.get("NATS_URL")!.value!).hostname;
  const triggers = scaledObject.spec.triggers as { type: string; name?: string; metadata: Record<string, string> }[];
  const consumersOf = (name: string) => triggers.filter((trigger) => trigger.metadata.stream === name).map((trigger) => trigger.metadata.consumer).sort();
  assert.deepEqual(consumersOf(stream), consumers, `${overlay}: one trigger per work-queue consumer`);
  assert.deepEqual(consumersOf(videoStream), consumers, `${overlay}: one trigger per video-queue consumer`);
  for (const trigger of triggers) {
    assert.equal(trigger.type, "nats-jetstream");
    assert.ok([stream, videoStream].includes(trigger.metadata.stream!), `${overlay}: trigger stream ${trigger.metadata.stream}`);
    // KEDA asks each consumer's leader at <pod>.<endpoint host>, which only the headless Service resolves.
    const [service, namespace, ...rest] = natsHost.split(".");
    assert.equal(trigger.metadata.natsServerMonitoringEndpoint, [`${service}-headless`, namespace, ...rest].join(".") + ":8222", `${overlay}: monitoring endpoint on the headless Service of NATS_URL's cluster`);
  }
  checkScalingFormula(scaledObject, triggers, environment, overlay);
  return scaledObject;
}

/**
 * Evaluates a scalingModifiers formula the way KEDA does (trigger name → its lag), for the subset
 * of expr-lang it may use here: numbers, trigger names, + - * /, parentheses and max/min.
 */
function evaluateFormula(formula: string, lags: Record<string, number>): number {
  assert.match(formula, /^[\w\s+\-*/().,]+$/, `formula ${formula}: only names, numbers, arithmetic and max/min`);
  for (const [name] of formula.matchAll(/[A-Za-z_]\w*/g)) assert.ok(name === "max" || name === "min" || name in lags, `formula names ${name}, which is no trigger`);
  return new Function("max", "min", ...Object.keys(lags), `return (${formula});`)(Math.max, Math.min, ...Object.values(lags)) as number;
}

/**
 * One metric per in-flight cap. The image lanes share INFERENCE_TASKS_IN_FLIGHT_MAX (one loop pulls
 * high, then normal) and the video lanes share VIDEO_CONCURRENCY, so each pair is summed before it
 * is divided by its cap; a trigger per lane, each divided alone, reads N pods busy on both lanes
 * as N/2 and scales busy pods away.
 */
function checkScalingFormula(scaledObject: K8sObject, triggers: { name?: string; metadata: Record<string, string> }[], environment: ReturnType<typeof environmentOf>, overlay: string): void {
  const imageCap = Number(environment.get("INFERENCE_TASKS_IN_FLIGHT_MAX")?.value);
  const videoCap = Number(environment.get("VIDEO_CONCURRENCY")?.value);
  assert.ok(Number.isInteger(imageCap) && imageCap >= 1 && Number.isInteger(videoCap) && videoCap >= 1, `${overlay}: INFERENCE_TASKS_IN_FLIGHT_MAX and VIDEO_CONCURRENCY are set`);
  const modifiers = scaledObject.spec.advanced?.scalingModifiers as { formula?: string; target?: string; metricType?: string } | undefined;
  assert.ok(modifiers?.formula, `${overlay}: advanced.scalingModifiers.formula combines the lanes (KEDA >= 2.12)`);
  assert.equal(modifiers.target, "1", `${overlay}: the formula counts replicas, target 1`);
  assert.equal(modifiers.metricType, "AverageValue", `${overlay}: AverageValue (fallback needs it)`);
  // expr-lang reads "work-high" as a subtraction: names must be identifiers.
  const names = triggers.map((trigger) => trigger.name ?? "");
  for (const name of names) assert.match(name, /^[A-Za-z_]\w*$/, `${overlay}: trigger name ${name} is an identifier the formula can name`);
  const lanes = (stream: string) => triggers.filter((trigger) => trigger.metadata.stream === stream).map((trigger) => trigger.name!);
  const [image, video] = [lanes(triggers[0]!.metadata.stream!), triggers.filter((trigger) => trigger.metadata.stream !== triggers[0]!.metadata.stream).map((trigger) => trigger.name!)];
  assert.ok(image.length === 2 && video!.length === 2, `${overlay}: two image and two video lanes`);
  const replicas = (lags: Record<string, number>) => Math.ceil(evaluateFormula(modifiers.formula!, lags) / Number(modifiers.target));
  const lagsOf = (imageLanes: [number, number], videoLanes: [number, number]) => ({ [image[0]!]: imageLanes[0], [image[1]!]: imageLanes[1], [video![0]!]: videoLanes[0], [video![1]!]: videoLanes[1] });
  for (const pods of [1, 2, 4, 7]) {
    // N pods, each full on both image lanes together and running its videos, nothing waiting: N.
    const half = imageCap / 2;
    assert.equal(replicas(lagsOf([pods * Math.ceil(half), pods * Math.floor(half)], [pods * videoCap, 0])), pods, `${overlay}: ${pods} pods busy on both lanes read as ${pods} replicas`);
    assert.equal(replicas(lagsOf([0, pods * imageCap], [0, 0])), pods, `${overlay}: ${pods} pods busy on one lane read as ${pods}`);
    assert.equal(replicas(lagsOf([0, 0], [Math.ceil(pods * videoCap / 2), Math.floor(pods * videoCap / 2)])), pods, `${overlay}: ${pods} pods on videos alone read as ${pods}`);
    // One more pod per cap of tasks waiting.
    assert.equal(replicas(lagsOf([pods * imageCap, imageCap + 1], [0, 0])), pods + 2, `${overlay}: a cap and one waiting add 2 pods`);
  }
}

// ---- the tests ------------------------------------------------------------------------------------

describe("k8s overlays", { skip: skipRendering }, () => {
  let cpu: K8sObject[] = [];
  let gpu: K8sObject[] = [];
  before(() => {
    cpu = render(join(root, "k8s/overlays/cpu"));
    gpu = render(join(root, "k8s/overlays/gpu"));
  });

  test("cpu: the mesh is sound, inference on CPU only", async () => {
    const deployments = await checkMesh(cpu, "cpu");
    const inference = deployments.get("inference")!;
    const container = containerOf(inference);
    const environment = environmentOf(cpu, container);
    assert.equal(environment.get("INFERENCE_EXECUTION_PROVIDERS")?.value, "cpu");
    assert.equal(environment.get("INFERENCE_BATCH_SIZE_MAX")?.value, "1");
    const threads = Number(environment.get("INFERENCE_THREADS_PER_SESSION")?.value);
    assert.ok(threads >= 1 && threads <= cpuCores(container.resources?.limits?.cpu), "onnxruntime threads within the CPU limit");
    // Compose builds the same images locally (tested below: the services and inference targets of
    // deploy/Dockerfile); equal names tie each manifest image to its Dockerfile target.
    const compose = composeServices("deploy/compose.yaml");
    assert.equal(imageParts(containerOf(deployments.get("gateway")!).image).name, imageParts(compose.gateway!.image!).name, "cpu: gateway, billing and orchestrator run the services image");
    assert.equal(imageParts(container.image).name, imageParts(compose.inference!.image!).name, "cpu inference runs the CPU inference image");
    assert.doesNotMatch(imageParts(container.image).tag, /cuda/, "cpu inference: not the CUDA tag");
    assert.ok(!JSON.stringify(cpu).includes("nvidia.com/gpu"), "no GPU resource, toleration or affinity anywhere");
    checkScaledObject(cpu, "cpu");
    checkNetworkPolicies(cpu, deployments, "cpu");
  });

  test("gpu: inference on the CUDA image, one GPU, tolerating the GPU taint", async () => {
    const deployments = await checkMesh(gpu, "gpu");
    const inference = deployments.get("inference")!;
    const pod = inference.spec.template.spec;
    const container = containerOf(inference);
    assert.equal(String(container.resources?.limits?.["nvidia.com/gpu"]), "1", "limits nvidia.com/gpu: 1");
    assert.ok(
      (pod.tolerations ?? []).some((toleration) => toleration.key === "nvidia.com/gpu" && toleration.effect === "NoSchedule" && toleration.operator === "Exists"),
      "tolerates nvidia.com/gpu:NoSchedule",
    );
    assert.ok(pod.affinity?.nodeAffinity || pod.nodeSelector, "pinned to GPU nodes");
    const cpuInferenceImage = containerOf(one<DeploymentObject>(cpu, "Deployment", "inference")).image;
    assert.notEqual(container.image, cpuInferenceImage, "gpu inference: the CUDA image, not the CPU one");
    assert.equal(imageParts(container.image).name, imageParts(cpuInferenceImage).name, "one inference image name, the tag tells CUDA apart");
    assert.match(imageParts(container.image).tag, /-cuda$/, "gpu inference: a -cuda tag");
    assert.equal(imageParts(container.image).name, imageParts(composeServices("deploy/compose.gpu.yaml").inference!.image!).name, "the image compose.gpu.yaml builds");
    const cpuGateway = containerOf(one<DeploymentObject>(cpu, "Deployment", "gateway")).image;
    assert.equal(containerOf(deployments.get("gateway")!).image, cpuGateway, "the same services image in both overlays");
    const environment = environmentOf(gpu, container);
    assert.equal(environment.get("INFERENCE_EXECUTION_PROVIDERS")?.value, "cuda", "gpu: CUDA only, no CPU fallback");
    const config = await configOf("inference");
    const gpuBatch = config.known.has("INFERENCE_BATCH_SIZE_MAX_GPU") ? "INFERENCE_BATCH_SIZE_MAX_GPU" : "INFERENCE_BATCH_SIZE_MAX";
    assert.ok(Number(environment.get(gpuBatch)?.value) > 1, `${gpuBatch} batches on the GPU`);
    const cpuInference = environmentOf(cpu, containerOf(one<DeploymentObject>(cpu, "Deployment", "inference")));
    assert.ok(Number(environment.get(gpuBatch)?.value) > Number(cpuInference.get("INFERENCE_BATCH_SIZE_MAX")?.value), "larger batch than cpu");
    checkNetworkPolicies(gpu, deployments, "gpu");
    const gpuScaled = checkScaledObject(gpu, "gpu");
    const cpuScaled = one(cpu, "ScaledObject", "inference");
    assert.ok(gpuScaled.spec.maxReplicaCount <= cpuScaled.spec.maxReplicaCount, "GPU replicas capped no higher than CPU ones");
  });

  test("hpa-inference component: a CPU HPA instead of KEDA", () => {
    const objects = renderComposition([join(root, "k8s/base")], [join(root, "k8s/components/hpa-inference")]);
    validateSchemas(objects);
    assert.equal(byKind(objects, "ScaledObject").length, 0);
    const hpa = one(objects, "HorizontalPodAutoscaler", "inference");
    assert.equal(hpa.spec.scaleTargetRef.name, "inference");
    assert.equal(hpa.spec.metrics[0].resource.name, "cpu");
    assert.ok(hpa.spec.minReplicas >= 1);
  });

  test("secret-from-env component: a generated Secret, and every reference follows its hashed name", () => {
    const objects = renderComposition([join(root, "k8s/overlays/cpu")], ["./secrets"], (directory) => {
      cpSync(join(root, "k8s/components/secret-from-env"), join(directory, "secrets"), { recursive: true });
      cpSync(join(directory, "secrets/secrets.env.example"), join(directory, "secrets/secrets.env"));
    });
    validateSchemas(objects);
    const secrets = byKind(objects, "Secret");
    assert.equal(secrets.length, 1);
    const secretName = secrets[0]!.metadata.name;
    assert.match(secretName, /^cutline-secrets-[a-z0-9]+$/);
    assert.deepEqual(Object.keys(secrets[0]!.data ?? {}).sort(), ["CUTLINE_ADMIN_TOKEN", "CUTLINE_RESULT_URL_KEY", "CUTLINE_SERVICE_TOKEN"]);
    for (const deployment of byKind<DeploymentObject>(objects, "Deployment")) {
      for (const variable of containerOf(deployment).env ?? []) {
        const reference = variable.valueFrom?.secretKeyRef;
        if (reference && secretOf(variable.name, deployment.metadata.name as ServiceName) === "cutline-secrets") assert.equal(reference.name, secretName, `${deployment.metadata.name}: ${variable.name}`);
      }
    }
  });
});

describe("deploy/", () => {
  test("compose.yaml: four services, each its own command, port, health check and known env", async () => {
    const compose = { services: composeServices("deploy/compose.yaml") };
    assert.ok(compose.services.postgres && compose.services.nats);
    assert.match(String(compose.services.postgres.image), /^postgres:16/);
    assert.match(String(compose.services.nats.image), /^nats:2\.10/);
    assert.ok(compose.services.nats.command?.includes("-js"), "NATS with JetStream");
    const dockerfile = readFileSync(join(root, "deploy/Dockerfile"), "utf8");
    for (const name of SERVICES) {
      const service = compose.services[name];
      assert.ok(service, `compose service ${name}`);
      assert.deepEqual(service.command, ["node", "--import", "tsx", `services/${name}/main.ts`], `${name}: command`);
      assert.equal(service.build?.dockerfile, "deploy/Dockerfile");
      const target = name === "inference" ? "inference" : "services";
      assert.equal(service.build?.target, target, `${name}: built from the ${target} target`);
      assert.match(dockerfile, new RegExp(`^FROM\\s+\\S+\\s+AS\\s+${target}\\s*$`, "im"), `deploy/Dockerfile has a ${target} stage`);
      assert.equal(service.image, name === "inference" ? "cutline-inference:local" : "cutline:local", `${name}: image`);
      assert.deepEqual(service.healthcheck?.test, ["CMD", "node", "deploy/healthcheck.mjs"], `${name}: health check`);
      const environment = service.environment ?? {};
      assert.equal(environment.PORT, String(DEFAULT_PORTS[name]), `${name}: PORT`);
      assert.equal(environment.HOST, "0.0.0.0");
      const config = await configOf(name);
      for (const [variable, value] of Object.entries(environment)) {
        assert.ok(config.known.has(variable), `compose ${name}: ${variable} is not read by ${name} (per ${config.source})`);
        const spec = config.variables.get(variable);
        const literal = String(value);
        if (spec && literal !== "" && !literal.includes("${")) assert.doesNotThrow(() => spec.parse(literal), `compose ${name}: ${variable}=${literal}`);
      }
      for (const [variable, target] of [["BILLING_URL", "billing"], ["ORCHESTRATOR_URL", "orchestrator"], ["INFERENCE_URL", "inference"]] as const) {
        if (environment[variable] !== undefined) assert.equal(environment[variable], `http://${target}:${DEFAULT_PORTS[target]}`, `compose ${name}: ${variable}`);
      }
    }
  });

  test("compose.gpu.yaml: inference from Dockerfile.gpu's inference stage, with one GPU", () => {
    const inference = composeServices("deploy/compose.gpu.yaml").inference;
    assert.ok(inference, "overrides inference");
    assert.equal(inference.build?.dockerfile, "deploy/Dockerfile.gpu");
    // Compose merges the override's build into compose.yaml's, target included: it must name a stage of Dockerfile.gpu.
    assert.equal(inference.build?.target, "inference");
    assert.match(readFileSync(join(root, "deploy/Dockerfile.gpu"), "utf8"), /^FROM\s+\S+\s+AS\s+inference\s*$/im, "Dockerfile.gpu has an inference stage");
    assert.equal(inference.image, "cutline-inference:local-cuda");
    assert.match(JSON.stringify(inference), /"driver":"nvidia"/, "reserves an NVIDIA device");
  });

  test("Dockerfiles: production deps from the lock file, no CUDA download at npm ci, non-root", () => {
    const cpuImage = readFileSync(join(root, "deploy/Dockerfile"), "utf8");
    const gpuImage = readFileSync(join(root, "deploy/Dockerfile.gpu"), "utf8");
    for (const [file, text] of [["Dockerfile", cpuImage], ["Dockerfile.gpu", gpuImage]] as const) {
      assert.match(text, /npm ci --omit=dev/, `${file}: npm ci --omit=dev`);
      assert.match(text, /ONNXRUNTIME_NODE_INSTALL=skip/, `${file}: onnxruntime-node's install skipped at npm ci`);
      const users = [...text.matchAll(/^USER\s+(\S+)/gm)].map((match) => match[1]!);
      assert.ok(users.length > 0 && /^[1-9]\d*(:\d+)?$/.test(users.at(-1)!), `${file}: final USER is a numeric non-root uid`);
    }
    assert.match(cpuImage, /ARG SERVICE/);
    assert.match(gpuImage, /node deploy\/fetch-cuda-provider\.mjs --version "\$\{ORT_VERSION\}" --sha512 "\$\{ORT_GPU_SHA512\}"/, "CUDA provider fetched at build time, pinned and checksummed");
    assert.match(gpuImage, /FROM \$\{CUDA_IMAGE\}/);
    assert.match(gpuImage, /ARG CUDA_IMAGE=nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/, "CUDA 12 + cuDNN runtime base");
  });

  test("healthcheck.mjs: exit 0 only while the server reports SERVING", async () => {
    const health = new HealthRegistry();
    const server = await startServiceServer({ name: "healthcheck-test", host: "127.0.0.1", port: 0, log: createLogger("test", "silent"), health, routes: () => {} });
    try {
      // Asynchronous: the server under test runs on this process's event loop.
      const check = async () => {
        try {
          const { stderr } = await promisify(execFile)(process.execPath, [join(root, "deploy/healthcheck.mjs"), String(server.port)], { timeout: 10_000 });
          return { status: 0, stderr };
        } catch (error) {
          const failed = error as { code?: number; stderr?: string };
          return { status: failed.code ?? -1, stderr: failed.stderr ?? "" };
        }
      };
      const notServing = await check();
      assert.equal(notServing.status, 1, notServing.stderr);
      assert.match(notServing.stderr, /NOT_SERVING/);
      health.setAllServing();
      const serving = await check();
      assert.equal(serving.status, 0, serving.stderr);
    } finally {
      await server.close();
    }
    const nothing = spawnSync(process.execPath, [join(root, "deploy/healthcheck.mjs"), "1"], { encoding: "utf8", timeout: 10_000 });
    assert.equal(nothing.status, 1, "nothing listening: unhealthy");
  });
});

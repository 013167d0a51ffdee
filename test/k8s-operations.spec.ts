// What an SRE checks before running Cutline on a GPU cluster (issue 15), on the rendered manifests
// (kustomize, validated against the Kubernetes and operators' schemas) and the files beside them:
// GPU pods that fail fast, KEDA thresholds derived from the per-pod in-flight cap, the ingress and
// its certificate, Postgres through CloudNativePG with one least-privilege role per service and
// migrations as a pre-deploy Job, NATS through the official chart, the NetworkPolicies of each,
// alerts and a dashboard whose every metric the services register, the runbook, the images'
// rules, and every variable the services read documented and wired to every service that reads it.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collectDefaultMetrics, Registry } from "prom-client";
import { parse } from "yaml";
import {
  admits,
  byKind,
  composeServices,
  configOf,
  containerOf,
  type DeploymentObject,
  environmentOf,
  type K8sObject,
  one,
  type PolicyObject,
  render,
  root,
  SERVICES,
  type ServiceName,
  skipRendering,
  type Source,
  validateSchemas,
} from "./k8s.testing.ts";
import { runs, stagesBehind, stagesOf } from "./dockerfile.testing.ts";
import { describeModel, loadModelBytes } from "../services/inference/store/model.store.ts";

const OVERLAYS = ["cpu", "gpu"] as const;
const DATABASE_SERVICES = ["gateway", "billing", "orchestrator"] as const;
const MIB = 1024 * 1024;

function readText(path: string): string {
  return readFileSync(join(root, path), "utf8");
}
function filesUnder(directory: string, keep: (path: string) => boolean): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(directory)) {
    const path = join(directory, entry);
    if (statSync(path).isDirectory()) found.push(...filesUnder(path, keep));
    else if (keep(path)) found.push(path);
  }
  return found;
}
const sourceFiles = filesUnder(join(root, "services"), (path) => path.endsWith(".ts") && !/\.(spec|testing)\.ts$/.test(path) && !path.includes("/gen/"));

/** nginx sizes: "1100m" → bytes. */
function nginxBytes(size: string): number {
  const match = /^(\d+)([kmg]?)$/i.exec(size);
  assert.ok(match, `nginx size ${size}`);
  return Number(match[1]) * ({ "": 1, k: 1024, m: MIB, g: 1024 * MIB } as Record<string, number>)[match[2]!.toLowerCase()]!;
}

// ---- metrics: what the services register ----------------------------------------------------------

/**
 * Every metric name the services register: string literals of their metrics modules
 * (`*.metrics.ts`, `metrics.ts`: helpers take the name first) and `name: "…"` of any file that
 * imports prom-client, plus prom-client's default metrics as a real registry lists them.
 */
async function registeredMetrics(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const file of sourceFiles) {
    const source = readFileSync(file, "utf8");
    if (!source.includes('from "prom-client"')) continue;
    const literals = /(^|\/)([\w-]+\.)?metrics\.ts$/.test(file) ? source.matchAll(/"([a-z_][a-z0-9_]*_[a-z0-9_]+)"/g) : source.matchAll(/\bname:\s*"([a-z_][a-z0-9_]*)"/g);
    for (const match of literals) names.add(match[1]!);
  }
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const metric of await registry.getMetricsAsJSON()) names.add(metric.name);
  return names;
}
/**
 * The metric names a PromQL expression reads from the services (cutline_*, process_*, nodejs_*),
 * series suffixes resolved. Other exporters' metrics (DCGM_FI_* of NVIDIA's DCGM exporter on GPU
 * nodes) are theirs to name and are not looked for in services/.
 */
function metricsOf(expression: string, registered: Set<string>): string[] {
  return [...expression.matchAll(/\b((?:cutline|process|nodejs)_[a-z0-9_]+)\b/g)].map(([, name]) => {
    const base = name!.replace(/_(bucket|sum|count)$/, "");
    return registered.has(name!) ? name! : base;
  });
}

// ---- the tests ------------------------------------------------------------------------------------

describe("operations (issue 15)", { skip: skipRendering }, () => {
  const rendered: Record<(typeof OVERLAYS)[number], K8sObject[]> = { cpu: [], gpu: [] };
  let migrate: K8sObject[] = [];
  let nats: K8sObject[] = [];
  before(() => {
    for (const overlay of OVERLAYS) rendered[overlay] = render(join(root, "k8s/overlays", overlay));
    migrate = render(join(root, "k8s/migrate"));
    nats = render(join(root, "k8s/nats"));
  });

  test("every rendered object passes its schema (Kubernetes, KEDA, cert-manager, CloudNativePG, Prometheus Operator)", () => {
    for (const overlay of OVERLAYS) validateSchemas(rendered[overlay]);
    validateSchemas(migrate);
    validateSchemas(nats);
    for (const kind of ["Cluster", "Pooler", "ScheduledBackup", "Certificate", "Ingress", "ServiceMonitor", "PrometheusRule", "ScaledObject"]) {
      for (const overlay of OVERLAYS) assert.ok(byKind(rendered[overlay], kind).length > 0, `${overlay} renders a ${kind}`);
    }
  });

  test("gpu: CUDA only, the NVIDIA runtime class, no surge, zone spread, at least 2 replicas", async () => {
    const objects = rendered.gpu;
    const inference = one<DeploymentObject>(objects, "Deployment", "inference");
    const environment = environmentOf(objects, containerOf(inference));
    assert.equal(environment.get("INFERENCE_EXECUTION_PROVIDERS")?.value, "cuda", "no CPU fallback on a GPU node");
    const accepted = (await configOf("inference")).variables.get("INFERENCE_EXECUTION_PROVIDERS")!;
    assert.deepEqual(accepted.parse("cuda"), ["cuda"], "the service accepts cuda alone");
    assert.equal(inference.spec.template.spec.runtimeClassName, "nvidia");
    assert.ok(!JSON.stringify(rendered.cpu).includes('"runtimeClassName"'), "cpu: no runtime class");
    const dockerfile = readText("deploy/Dockerfile.gpu");
    assert.match(dockerfile, /INFERENCE_EXECUTION_PROVIDERS=cuda \\/, "the CUDA image defaults to cuda alone too");
    for (const overlay of OVERLAYS) {
      const deployment = one<DeploymentObject>(rendered[overlay], "Deployment", "inference");
      const strategy = (deployment.spec as { strategy?: { rollingUpdate?: { maxSurge?: number; maxUnavailable?: number } } }).strategy;
      assert.equal(strategy?.rollingUpdate?.maxSurge, 0, `${overlay}: a rollout needs no spare GPU`);
      assert.ok((strategy?.rollingUpdate?.maxUnavailable ?? 0) >= 1, `${overlay}: maxUnavailable lets the rollout proceed`);
      const spread = deployment.spec.template.spec.topologySpreadConstraints ?? [];
      const zone = spread.find((constraint) => constraint.topologyKey === "topology.kubernetes.io/zone");
      assert.ok(zone, `${overlay}: inference spreads over zones`);
      assert.deepEqual(zone.labelSelector.matchLabels, deployment.spec.selector.matchLabels, `${overlay}: the spread counts inference pods`);
      const scaled = one(rendered[overlay], "ScaledObject", "inference");
      assert.ok(scaled.spec.minReplicaCount >= 2, `${overlay}: minReplicaCount >= 2`);
      const budget = one(rendered[overlay], "PodDisruptionBudget", "inference");
      assert.ok(budget.spec.maxUnavailable < scaled.spec.minReplicaCount, `${overlay}: a drain never takes every replica`);
    }
  });

  test("KEDA: one formula divides each queue's lanes by its per-pod cap, on the services' NATS account", async () => {
    const queueLengthDefault = (await configOf("inference")).variables.get("INFERENCE_QUEUE_LENGTH_MAX")!.defaultValue as number;
    for (const overlay of OVERLAYS) {
      const objects = rendered[overlay];
      const environment = environmentOf(objects, containerOf(one<DeploymentObject>(objects, "Deployment", "inference")));
      const cap = Number(environment.get("INFERENCE_TASKS_IN_FLIGHT_MAX")?.value);
      assert.ok(Number.isInteger(cap) && cap >= 1, `${overlay}: INFERENCE_TASKS_IN_FLIGHT_MAX is set`);
      const batch = Number(environment.get(overlay === "gpu" ? "INFERENCE_BATCH_SIZE_MAX_GPU" : "INFERENCE_BATCH_SIZE_MAX")?.value);
      assert.ok(cap >= batch, `${overlay}: the cap (${cap}) lets a pod fill its batch (${batch})`);
      // Inference refuses a cap above the images its engine holds.
      const queueLength = Number(environment.get("INFERENCE_QUEUE_LENGTH_MAX")?.value ?? queueLengthDefault);
      assert.ok(cap <= queueLength, `${overlay}: the cap (${cap}) is at most INFERENCE_QUEUE_LENGTH_MAX (${queueLength})`);
      const scaled = one(objects, "ScaledObject", "inference");
      // KEDA's lag is pending + ack pending; N busy pods hold N × cap ack-pending tasks, which
      // must read as N replicas: the formula divides each queue's lanes, summed, by its cap
      // (checked against the env caps in k8s-manifests.spec.ts). A per-trigger lagThreshold
      // would be a second number to keep in step, unused while the formula scales.
      assert.match(scaled.spec.advanced.scalingModifiers.formula, new RegExp(`/ ${cap}\\b`), `${overlay}: the formula divides by INFERENCE_TASKS_IN_FLIGHT_MAX (${cap})`);
      for (const trigger of scaled.spec.triggers as { name: string; metadata: Record<string, string> }[]) {
        assert.equal(trigger.metadata.lagThreshold, undefined, `${overlay}: ${trigger.name}: no lagThreshold beside the formula`);
        assert.equal(trigger.metadata.account, "CUTLINE", `${overlay}: the services' NATS account`);
      }
    }
    assert.match(readText("k8s/README.md"), /\(work_high \+ work_normal\) \/ C/, "the arithmetic is documented");
    // The account KEDA reads is the one the services' user belongs to, with JetStream.
    const accounts = readText("k8s/nats/accounts.conf.example");
    assert.match(accounts, /CUTLINE\s*\{\s*jetstream:\s*enabled/);
  });

  test("the model the manifests ask for is the one the inference images carry", () => {
    for (const file of ["deploy/Dockerfile", "deploy/Dockerfile.gpu"]) {
      const defaults = [...readText(file).matchAll(/^ARG INFERENCE_MODEL=(\S+)$/gm)].map(([, name]) => name);
      assert.ok(defaults.length >= 2 && new Set(defaults).size === 1, `${file}: one INFERENCE_MODEL default for the model stage and the image`);
      for (const overlay of OVERLAYS) {
        const environment = environmentOf(rendered[overlay], containerOf(one<DeploymentObject>(rendered[overlay], "Deployment", "inference")));
        assert.equal(environment.get("INFERENCE_MODEL")?.value, defaults[0], `${overlay}: INFERENCE_MODEL is the model ${file} extracts`);
      }
    }
  });

  test("the gateway: an HPA of at least 2 replicas owns the count", () => {
    for (const overlay of OVERLAYS) {
      const hpa = one(rendered[overlay], "HorizontalPodAutoscaler", "gateway");
      assert.equal(hpa.spec.scaleTargetRef.name, "gateway");
      assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas, `${overlay}: gateway HPA bounds`);
      assert.equal((one(rendered[overlay], "Deployment", "gateway").spec as { replicas?: number }).replicas, undefined, `${overlay}: no replicas field to fight the HPA`);
    }
  });

  test("ingress: TLS from a cert-manager ClusterIssuer, a body limit above the largest plan's upload, gRPC over HTTP/2", async () => {
    const plans = JSON.parse(readText("deploy/plans/plans.json")) as { classes: Record<string, { maxUploadBytes: number; videoBytesMax: number }>; plans: { maxUploadBytes?: number; videoBytesMax?: number }[] };
    const gateway = await configOf("gateway");
    const limits = [...Object.values(plans.classes), ...plans.plans];
    const videoMax = Math.min(Math.max(...limits.map((limit) => limit.videoBytesMax ?? 0)), gateway.variables.get("VIDEO_BYTES_MAX")!.defaultValue as number);
    const imageMax = Math.max(...limits.map((limit) => limit.maxUploadBytes ?? 0));
    const batchMax = gateway.variables.get("BATCH_BYTES_MAX")!.defaultValue as number;
    assert.equal(videoMax, 1024 * MIB, "pro plans send 1 GiB videos");
    // A video upload may carry a background image too (bg_image_file), and multipart framing.
    const largestBody = Math.max(videoMax + imageMax + MIB, batchMax);
    for (const overlay of OVERLAYS) {
      const objects = rendered[overlay];
      const certificate = one(objects, "Certificate", "gateway-tls");
      assert.equal(certificate.spec.issuerRef.kind, "ClusterIssuer");
      assert.equal(certificate.spec.issuerRef.group, "cert-manager.io");
      const ingresses = byKind(objects, "Ingress");
      assert.ok(ingresses.length >= 1);
      const protocols = new Set<string>();
      for (const ingress of ingresses) {
        const annotations = ingress.metadata.annotations ?? {};
        const where = `${overlay}: Ingress ${ingress.metadata.name}`;
        assert.ok(nginxBytes(annotations["nginx.ingress.kubernetes.io/proxy-body-size"]!) >= largestBody, `${where}: body limit admits ${largestBody} bytes`);
        assert.equal(annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"], "off", `${where}: uploads stream to the gateway`);
        protocols.add(annotations["nginx.ingress.kubernetes.io/backend-protocol"]!);
        for (const tls of ingress.spec.tls as { hosts: string[]; secretName: string }[]) {
          assert.equal(tls.secretName, certificate.spec.secretName, `${where}: serves the certificate's Secret`);
          for (const host of tls.hosts) assert.ok(certificate.spec.dnsNames.includes(host), `${where}: the certificate covers ${host}`);
        }
        for (const rule of ingress.spec.rules as { host: string; http: { paths: { backend: { service: { name: string; port: { name: string } } } }[] } }[]) {
          assert.ok((ingress.spec.tls as { hosts: string[] }[]).some((tls) => tls.hosts.includes(rule.host)), `${where}: ${rule.host} is served over TLS`);
          for (const path of rule.http.paths) assert.deepEqual(path.backend.service, { name: "gateway", port: { name: "grpc" } }, `${where}: to the gateway's grpc port`);
        }
      }
      assert.deepEqual([...protocols].sort(), ["GRPC", "HTTP"], `${overlay}: one Ingress for HTTP/1.1 clients, one for gRPC (HTTP/2 to the gateway)`);
    }
  });

  test("Postgres: a CloudNativePG Cluster with backups and PITR, a pooler, one role per service with only its own tables", () => {
    const objects = rendered.cpu;
    const cluster = byKind(objects, "Cluster")[0]!;
    assert.ok(cluster.spec.instances >= 3, "three instances (one primary, two standbys)");
    assert.ok(cluster.spec.backup.barmanObjectStore.destinationPath, "continuous backup to object storage");
    assert.ok(cluster.spec.backup.barmanObjectStore.wal, "WAL archived: point-in-time recovery");
    assert.match(cluster.spec.backup.retentionPolicy, /^\d+[dwm]$/);
    // The point-in-time recovery the runbook applies: a Cluster bootstrapped from those backups.
    const recovery = parse(readText("k8s/components/postgres/recovery.example.yaml")) as K8sObject;
    validateSchemas([recovery]);
    assert.ok(recovery.spec.bootstrap.recovery.recoveryTarget.targetTime, "recovers to a point in time");
    const source = (recovery.spec.externalClusters as { name: string; barmanObjectStore: { destinationPath: string } }[]).find((external) => external.name === recovery.spec.bootstrap.recovery.source);
    assert.equal(source?.barmanObjectStore.destinationPath, cluster.spec.backup.barmanObjectStore.destinationPath, "from the bucket the Cluster backs up to");
    assert.deepEqual(recovery.spec.managed.roles.map((role: { name: string }) => role.name), cluster.spec.managed.roles.map((role: { name: string }) => role.name), "with the same service roles");
    const scheduled = byKind(objects, "ScheduledBackup")[0]!;
    assert.equal(scheduled.spec.cluster.name, cluster.metadata.name);
    const pooler = byKind(objects, "Pooler")[0]!;
    assert.equal(pooler.spec.cluster.name, cluster.metadata.name);
    assert.equal(pooler.spec.type, "rw");
    const roles = cluster.spec.managed.roles as { name: string; login: boolean; superuser?: boolean; createdb?: boolean; createrole?: boolean; passwordSecret: { name: string } }[];
    assert.deepEqual(roles.map((role) => role.name).sort(), DATABASE_SERVICES.map((name) => `cutline_${name}`).sort(), "one login role per service that has a database");
    for (const role of roles) {
      assert.ok(role.login && !role.superuser && !role.createdb && !role.createrole, `${role.name}: a plain login role`);
      const service = role.name.replace(/^cutline_/, "") as ServiceName;
      assert.equal(role.passwordSecret.name, `cutline-db-${service}`);
      const environment = environmentOf(objects, containerOf(one<DeploymentObject>(objects, "Deployment", service)));
      assert.deepEqual(environment.get("DATABASE_URL")?.secret, { name: `cutline-db-${service}`, key: "DATABASE_URL" }, `${service} logs in as ${role.name}`);
    }

    // The grants: each service exactly the tables its migrations create (read from the source, so
    // a new table without a grant fails here), none granted to two roles.
    const grants = readText("k8s/migrate/grants.sql");
    const granted = new Map<string, { role: string; privileges: string }[]>();
    for (const [, role, table, privileges] of grants.matchAll(/\('(cutline_\w+)', '(\w+)', '([A-Z, ]+)'\)/g)) {
      granted.set(table!, [...(granted.get(table!) ?? []), { role: role!, privileges: privileges! }]);
    }
    for (const service of DATABASE_SERVICES) {
      const created = new Set<string>();
      for (const file of sourceFiles.filter((path) => path.startsWith(join(root, "services", service, "store")))) {
        for (const match of readFileSync(file, "utf8").matchAll(/createTable\(\s*"(\w+)"|create (?:unlogged |temporary )?table (?:if not exists )?"?(\w+)/gi)) created.add((match[1] ?? match[2])!.toLowerCase());
      }
      assert.ok(created.size > 0, `${service}: tables found in its migrations`);
      for (const table of [...created, `${service}_migrations`]) {
        assert.deepEqual(granted.get(table)?.map((grant) => grant.role), [`cutline_${service}`], `${table}: granted to cutline_${service} alone (k8s/migrate/grants.sql)`);
      }
    }
    for (const [table, [grant]] of granted) assert.match(grant!.privileges, /^(SELECT|INSERT|UPDATE|DELETE)(, (INSERT|UPDATE|DELETE))*$/, `${table}: table rights only, no TRUNCATE, no ALL`);
    assert.match(grants, /REVOKE CREATE ON SCHEMA public FROM PUBLIC/, "no service role creates objects");
    assert.equal(granted.get("billing_ledger_entries")?.[0]?.privileges, "SELECT, INSERT", "the ledger is append-only for billing too");
  });

  test("migrations: a pre-deploy Job on the services image, as the owner, then the grants; services never migrate at start", () => {
    const job = one(migrate, "Job", "cutline-migrate");
    const pod = job.spec.template.spec;
    assert.equal(pod.restartPolicy, "Never");
    const [migrateContainer] = pod.initContainers as { image: string; command: string[]; env: { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[] }[];
    assert.deepEqual(migrateContainer!.command, ["node", "--import", "tsx", "services/migrate.ts"]);
    for (const overlay of OVERLAYS) {
      assert.equal(migrateContainer!.image, containerOf(one<DeploymentObject>(rendered[overlay], "Deployment", "billing")).image, `${overlay}: the Job runs the release's services image`);
    }
    const cluster = byKind(rendered.cpu, "Cluster")[0]!;
    assert.deepEqual(migrateContainer!.env.find((variable) => variable.name === "DATABASE_URL")?.valueFrom?.secretKeyRef, { name: `${cluster.metadata.name}-app`, key: "uri" }, "as the owner, CloudNativePG's app Secret");
    const grantsContainer = pod.containers[0] as { command: string[]; volumeMounts: { name: string; mountPath: string }[]; env: { name: string; value?: string }[] };
    assert.ok(grantsContainer.command.includes("--set=ON_ERROR_STOP=1"));
    assert.equal(grantsContainer.env.find((variable) => variable.name === "PGHOST")?.value, `${cluster.metadata.name}-rw`, "straight to the primary, not the transaction pooler");
    const sqlVolume = (pod.volumes as { name: string; configMap?: { name: string } }[]).find((volume) => volume.configMap);
    assert.ok(byKind(migrate, "ConfigMap").some((configMap) => configMap.metadata.name === sqlVolume?.configMap?.name && configMap.data?.["grants.sql"] === readText("k8s/migrate/grants.sql")));
    for (const overlay of OVERLAYS) {
      for (const service of DATABASE_SERVICES) {
        const environment = environmentOf(rendered[overlay], containerOf(one<DeploymentObject>(rendered[overlay], "Deployment", service)));
        assert.equal(environment.get("MIGRATE_ON_START")?.value, "false", `${overlay}/${service}: MIGRATE_ON_START=false`);
      }
    }
    assert.equal(byKind(rendered.cpu, "Job").length, 0, "the Job is applied on its own, before the overlay");
  });

  test("NetworkPolicies: Postgres from the services through the pooler, NATS from the mesh and KEDA, metrics from Prometheus", () => {
    const objects = rendered.cpu;
    const policies = byKind<PolicyObject>(objects, "NetworkPolicy");
    const pod = (name: string) => ({ namespace: { "kubernetes.io/metadata.name": "cutline" }, pod: one<DeploymentObject>(objects, "Deployment", name).spec.template.metadata.labels });
    const migratePod = { namespace: { "kubernetes.io/metadata.name": "cutline" }, pod: one(migrate, "Job", "cutline-migrate").spec.template.metadata.labels };
    const prometheus: Source = { namespace: { "kubernetes.io/metadata.name": "monitoring" }, pod: { "app.kubernetes.io/name": "prometheus" } };
    const keda: Source = { namespace: { "kubernetes.io/metadata.name": "keda" }, pod: { "app.kubernetes.io/name": "keda-operator" } };
    const stranger: Source = { namespace: { "kubernetes.io/metadata.name": "default" }, pod: { "app.kubernetes.io/name": "gateway" } };
    const debug: Source = { namespace: { "kubernetes.io/metadata.name": "cutline" }, pod: { "app.kubernetes.io/name": "debug" } };
    const pooler = { "cnpg.io/poolerName": byKind(objects, "Pooler")[0]!.metadata.name, "cnpg.io/podRole": "pooler" };
    const instance = { "cnpg.io/cluster": byKind(objects, "Cluster")[0]!.metadata.name, "cnpg.io/instanceRole": "primary" };
    for (const service of DATABASE_SERVICES) assert.ok(admits(policies, pooler, 5432, pod(service)), `${service} → pooler`);
    for (const source of [pod("inference"), debug, stranger, "outside" as const]) assert.ok(!admits(policies, pooler, 5432, source), `pooler refuses ${JSON.stringify(source)}`);
    assert.ok(admits(policies, instance, 5432, { namespace: { "kubernetes.io/metadata.name": "cutline" }, pod: pooler }), "pooler → instances");
    assert.ok(admits(policies, instance, 5432, migratePod), "migrate Job → instances");
    assert.ok(admits(policies, instance, 8000, { namespace: { "kubernetes.io/metadata.name": "cnpg-system" }, pod: { "app.kubernetes.io/name": "cloudnative-pg" } }), "operator → instance manager");
    for (const service of SERVICES) assert.ok(!admits(policies, instance, 5432, pod(service)), `${service} never reaches an instance directly`);
    assert.ok(admits(policies, instance, 9187, prometheus) && admits(policies, pooler, 9127, prometheus), "Prometheus scrapes Postgres and PgBouncer");
    assert.ok(!admits(policies, instance, 9187, debug), "nobody else scrapes");

    // NATS (namespace nats): clients from the mesh, monitoring from KEDA, routes between nodes.
    const natsPolicies = byKind<PolicyObject>(nats, "NetworkPolicy");
    const natsPod = { "app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "nats", "app.kubernetes.io/component": "nats" };
    const natsBox = { namespace: { "kubernetes.io/metadata.name": "nats" }, pod: { "app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "nats", "app.kubernetes.io/component": "nats-box" } };
    assert.ok(admits(natsPolicies, natsPod, 4222, natsBox, "nats"), "nats-box → NATS");
    assert.ok(!admits(natsPolicies, natsPod, 6222, natsBox, "nats"), "nats-box is no route");
    for (const service of SERVICES) assert.ok(admits(natsPolicies, natsPod, 4222, pod(service), "nats"), `${service} → NATS`);
    for (const source of [stranger, debug, keda, "outside" as const]) assert.ok(!admits(natsPolicies, natsPod, 4222, source, "nats"), `NATS clients: refuses ${JSON.stringify(source)}`);
    assert.ok(admits(natsPolicies, natsPod, 8222, keda, "nats"), "KEDA reads the monitoring endpoint");
    assert.ok(!admits(natsPolicies, natsPod, 8222, pod("gateway"), "nats"), "the services do not");
    assert.ok(admits(natsPolicies, natsPod, 6222, { namespace: { "kubernetes.io/metadata.name": "nats" }, pod: natsPod }, "nats"), "routes between NATS nodes");
    assert.ok(admits(natsPolicies, natsPod, 7777, prometheus, "nats") && !admits(natsPolicies, natsPod, 7777, stranger, "nats"), "NATS metrics to Prometheus only");
  });

  test("NATS: the official chart's values, 3 nodes, JetStream on file PVCs, accounts from a Secret, replicas matching", () => {
    const values = parse(readText("k8s/nats/values.yaml")) as {
      config: { cluster: { enabled: boolean; replicas: number }; jetstream: { enabled: boolean; fileStore: { enabled: boolean; pvc: { enabled: boolean; size: string } }; memoryStore: { enabled: boolean } }; monitor: { enabled: boolean; port: number }; merge: Record<string, string> };
      container: { patch: { value: { name: string; mountPath: string } }[] };
      podTemplate: { patch: { value: { name: string; secret?: { secretName: string } } }[] };
    };
    assert.equal(values.config.cluster.enabled, true);
    assert.equal(values.config.cluster.replicas, 3);
    assert.ok(values.config.jetstream.enabled && values.config.jetstream.fileStore.enabled && values.config.jetstream.fileStore.pvc.enabled, "JetStream on file storage PVCs");
    assert.equal(values.config.jetstream.memoryStore.enabled, false);
    assert.equal(values.config.monitor.port, 8222, "the port KEDA reads");
    const include = Object.entries(values.config.merge).find(([key]) => key.endsWith("$include"))?.[1];
    const volume = values.podTemplate.patch.map((patch) => patch.value).find((value) => value.secret);
    const mount = values.container.patch.map((patch) => patch.value).find((value) => value.name === volume?.name);
    assert.ok(include && volume && mount, "accounts included from a mounted Secret");
    assert.ok(include.includes(mount.mountPath.replace(/^\/etc\//, "")), "the include names the mounted Secret's file");
    for (const overlay of OVERLAYS) {
      const environment = environmentOf(rendered[overlay], containerOf(one<DeploymentObject>(rendered[overlay], "Deployment", "orchestrator")));
      assert.equal(Number(environment.get("NATS_REPLICAS")?.value), values.config.cluster.replicas, `${overlay}: streams, consumers and buckets get one replica per node`);
      assert.equal(new URL(environment.get("NATS_URL")!.value!).hostname, "nats.nats.svc.cluster.local", `${overlay}: the chart's client Service (release nats, namespace nats)`);
      for (const service of SERVICES) {
        const credentials = environmentOf(rendered[overlay], containerOf(one<DeploymentObject>(rendered[overlay], "Deployment", service)));
        for (const variable of ["NATS_USER", "NATS_PASSWORD"]) assert.equal(credentials.get(variable)?.secret?.name, "cutline-nats", `${overlay}/${service}: ${variable} from a Secret`);
      }
    }
  });

  test("monitoring: a ServiceMonitor of every service's metrics port; alerts with runbook entries; every queried metric registered", async () => {
    const objects = rendered.gpu;
    const monitor = one(objects, "ServiceMonitor", "cutline");
    const service = byKind(objects, "Service").find((candidate) => Object.entries(monitor.spec.selector.matchLabels as Record<string, string>).every(([key, value]) => candidate.metadata.labels?.[key] === value));
    assert.ok(service, "the ServiceMonitor selects a Service");
    assert.equal(service.spec.clusterIP, "None", "headless: Prometheus scrapes each pod");
    assert.equal(service.spec.ports[0].targetPort, "metrics");
    assert.equal(monitor.spec.endpoints[0].port, service.spec.ports[0].name);
    for (const name of SERVICES) {
      const labels = one<DeploymentObject>(objects, "Deployment", name).spec.template.metadata.labels;
      assert.ok(Object.entries(service.spec.selector as Record<string, string>).every(([key, value]) => labels[key] === value), `the metrics Service selects ${name}'s pods`);
    }

    const runbook = readText("docs/runbook.md");
    const anchors = new Set([...runbook.matchAll(/^#{1,6}\s+(.+)$/gm)].map(([, heading]) => heading!.trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-")));
    const rules = one(objects, "PrometheusRule", "cutline").spec.groups.flatMap((group: { rules: unknown[] }) => group.rules) as { alert: string; expr: string; annotations: Record<string, string> }[];
    const registered = await registeredMetrics();
    const missing: string[] = [];
    for (const rule of rules) {
      const url = rule.annotations.runbook_url;
      assert.ok(url, `${rule.alert}: runbook_url`);
      const anchor = /docs\/runbook\.md#([\w-]+)$/.exec(url);
      assert.ok(anchor && anchors.has(anchor[1]!), `${rule.alert}: ${url} names a heading of docs/runbook.md`);
      assert.equal(anchor[1], rule.alert.toLowerCase(), `${rule.alert}: its entry is headed by its name`);
      for (const metric of metricsOf(rule.expr, registered)) if (!registered.has(metric)) missing.push(`alert ${rule.alert}: ${metric}`);
    }
    const alerts = rules.map((rule) => rule.alert);
    for (const expected of ["CutlineHighErrorRate", "CutlineQueueLag", "CutlineInferenceCpuFallback", "CutlineHoldLeak", "CutlinePodRestarts"]) assert.ok(alerts.includes(expected), `alert ${expected}`);

    const dashboard = JSON.parse(readText("k8s/components/monitoring/grafana-dashboard.json")) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const configMap = byKind(objects, "ConfigMap").find((candidate) => candidate.data?.["cutline.json"]);
    assert.deepEqual(JSON.parse(configMap!.data!["cutline.json"]!), dashboard, "the dashboard ships as a ConfigMap for Grafana's sidecar");
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        for (const metric of metricsOf(target.expr, registered)) {
          queried.add(metric);
          if (!registered.has(metric)) missing.push(`dashboard "${panel.title}": ${metric}`);
        }
      }
    }
    for (const kind of ["rpc", "http", "inference", "holds", "credits", "work_queue", "jobs"]) assert.ok([...queried].some((metric) => metric.includes(kind)), `the dashboard shows ${kind} metrics`);
    assert.deepEqual([...new Set(missing)], [], "metrics queried but registered nowhere in services/ (nor among prom-client's defaults)");
  });

  test("every variable the services read is in README's table and reaches every service that reads it, with one value", async () => {
    const readme = readText("README.md");
    const table = readme.slice(readme.indexOf("<!-- config-table:start -->"), readme.indexOf("<!-- config-table:end -->"));
    const documented = new Set([...table.matchAll(/^\| `(\w+)` \|/gm)].map(([, name]) => name!));
    const configs = new Map<ServiceName, Set<string>>();
    for (const service of SERVICES) configs.set(service, (await configOf(service)).known);
    for (const [service, known] of configs) for (const variable of known) assert.ok(documented.has(variable), `${variable} (read by ${service}) is in README's config table`);
    // Set per Deployment on purpose, or a different Secret per service.
    const perService = new Set(["PORT", "SHUTDOWN_TIMEOUT_MS", "DATABASE_URL"]);
    for (const overlay of OVERLAYS) {
      const environments = new Map(SERVICES.map((service) => [service, environmentOf(rendered[overlay], containerOf(one<DeploymentObject>(rendered[overlay], "Deployment", service)))]));
      for (const [giver, environment] of environments) {
        for (const [variable, setting] of environment) {
          if (perService.has(variable)) continue;
          for (const [reader, known] of configs) {
            if (!known.has(variable)) continue;
            assert.deepEqual(environments.get(reader)!.get(variable), setting, `${overlay}: ${reader} reads ${variable}, which ${giver} receives: it gets it too, the same`);
          }
        }
      }
    }
    // The compose mesh, by the same rule.
    const compose = composeServices("deploy/compose.yaml");
    for (const giver of SERVICES) {
      for (const [variable, value] of Object.entries(compose[giver]!.environment ?? {})) {
        if (perService.has(variable)) continue;
        for (const [reader, known] of configs) {
          if (known.has(variable)) assert.equal(compose[reader]!.environment?.[variable], value, `compose: ${reader} reads ${variable}, which ${giver} receives: it gets it too, the same`);
        }
      }
    }
  });
});

describe("images: the Dockerfiles' rules (no Docker engine here)", () => {
  const cpu = stagesOf(readText("deploy/Dockerfile"));
  const gpu = stagesOf(readText("deploy/Dockerfile.gpu"));

  for (const [file, stages] of [["Dockerfile", cpu], ["Dockerfile.gpu", gpu]] as const) {
    test(`${file}: inference ships its own code, one platform's onnxruntime, one model, in layers deps → model → code`, () => {
      const inference = stages.find((stage) => stage.name === "inference")!;
      const copies = inference.instructions.filter((instruction) => /^COPY\s/i.test(instruction));
      const sources = copies.flatMap((copy) => (/^COPY\s+(?!--from)(\S+)\s+\S+$/i.exec(copy)?.[1] ?? "").split(" ")).filter((source) => source.startsWith("services"));
      assert.deepEqual(sources.sort(), ["services/common", "services/inference"], `${file}: no other service's code`);
      const position = (pattern: RegExp) => copies.findIndex((copy) => pattern.test(copy));
      const dependencies = position(/--from=inference-deps \/app\/node_modules/);
      const model = position(/--from=model \/model/);
      const code = position(/^COPY services\//);
      assert.ok(dependencies >= 0 && dependencies < model && model < code, `${file}: dependencies, then the model, then the code (${dependencies}, ${model}, ${code})`);
      assert.ok(inference.instructions.some((instruction) => /INFERENCE_MODEL_DIRECTORY=\/app\/model/.test(instruction)), `${file}: inference loads the extracted model`);
      const behind = runs(stagesBehind(stages, "inference")).join("\n");
      assert.match(behind, /node deploy\/extract-model\.mjs "\$\{INFERENCE_MODEL\}" \/model/, `${file}: the model stage extracts one model`);
      assert.match(behind, /rm -rf node_modules\/@imgly\/background-removal-data\/dist node_modules\/onnxruntime-web/, `${file}: the package's every model and the browser runtime are dropped`);
      assert.match(behind, /bin\/napi-v6\/\*\/\*.*rm -rf "\$\{platform\}"/, `${file}: other platforms' onnxruntime binaries are removed`);
      assert.match(behind, /find node_modules\/onnxruntime-node\/bin -name onnxruntime_binding\.node \| wc -l\)" -eq 1/, `${file}: the build fails unless one platform is left`);
    });
  }

  test("Dockerfile.gpu: the CUDA provider pinned to onnxruntime-node's version and checked against a SHA-512 the build must be given", () => {
    const text = readText("deploy/Dockerfile.gpu");
    const installed = (createRequire(join(root, "package.json"))("onnxruntime-node/package.json") as { version: string }).version;
    assert.equal(/^ARG ORT_VERSION=(\S+)$/m.exec(text)?.[1], installed, "ORT_VERSION = the locked onnxruntime-node");
    assert.match(text, /^ARG ORT_GPU_SHA512$/m, "no default checksum: the build refuses without one");
    assert.doesNotMatch(text, /script\/install\.js/, "not onnxruntime-node's unverified download");
    assert.match(text, /ARG CUDA_IMAGE=nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/);
  });

  test("deploy/extract-model.mjs: the model's bytes, checked against its sha256, which inference loads from the directory; an unknown model refused", async () => {
    const directory = mkdtempSync(join(tmpdir(), "cutline-model-"));
    try {
      const model = JSON.parse(readText("services/inference/models/isnet-small.model.json")) as { sha256: string; bytes: number };
      const result = spawnSync(process.execPath, [join(root, "deploy/extract-model.mjs"), "isnet-small", directory], { encoding: "utf8" });
      assert.equal(result.status, 0, result.stderr);
      const bytes = readFileSync(join(directory, "isnet-small.onnx"));
      assert.equal(bytes.length, model.bytes);
      assert.equal(createHash("sha256").update(bytes).digest("hex"), model.sha256);
      // What the image's INFERENCE_MODEL_DIRECTORY gives the service: the loader takes <name>.onnx and checks it again.
      assert.equal((await loadModelBytes(await describeModel("isnet-small"), directory)).length, model.bytes);
      const unknown = spawnSync(process.execPath, [join(root, "deploy/extract-model.mjs"), "isnet-huge", directory], { encoding: "utf8" });
      assert.equal(unknown.status, 1);
      assert.match(unknown.stderr, /isnet-huge/);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test("deploy/fetch-cuda-provider.mjs: refuses a wrong version or checksum, extracts the three libraries from the right package", () => {
    const directory = mkdtempSync(join(tmpdir(), "cutline-ort-"));
    try {
      const require = createRequire(join(root, "package.json"));
      const version = (require("onnxruntime-node/package.json") as { version: string }).version;
      const AdmZip = require("adm-zip") as new () => { addFile(name: string, data: Buffer): void; toBuffer(): Buffer };
      const zip = new AdmZip();
      for (const library of ["cuda", "shared", "tensorrt"]) zip.addFile(`runtimes/linux-x64/native/libonnxruntime_providers_${library}.so`, Buffer.from(`provider ${library}`));
      const nupkg = join(directory, "package.nupkg");
      writeFileSync(nupkg, zip.toBuffer());
      const sha512 = createHash("sha512").update(readFileSync(nupkg)).digest("base64");
      const target = join(directory, "lib");
      const run = (...args: string[]) => spawnSync(process.execPath, [join(root, "deploy/fetch-cuda-provider.mjs"), ...args, "--file", nupkg, "--target", target], { encoding: "utf8" });
      const wrongVersion = run("--version", "0.0.1", "--sha512", sha512);
      assert.equal(wrongVersion.status, 1);
      assert.match(wrongVersion.stderr, new RegExp(`differs from the installed onnxruntime-node ${version.replace(/\./g, "\\.")}`));
      const noChecksum = run("--version", version);
      assert.equal(noChecksum.status, 1);
      assert.match(noChecksum.stderr, /--sha512 is required/);
      const wrongChecksum = run("--version", version, "--sha512", createHash("sha512").update("another package").digest("base64"));
      assert.equal(wrongChecksum.status, 1);
      assert.match(wrongChecksum.stderr, /refusing it/);
      assert.throws(() => readdirSync(target), "nothing extracted from a refused package");
      const good = run("--version", version, "--sha512", sha512);
      assert.equal(good.status, 0, good.stderr);
      assert.deepEqual(readdirSync(target).sort(), ["libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so", "libonnxruntime_providers_tensorrt.so"]);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test("compose: the welcome container prints how to get an API key, through a route and plan that exist", () => {
    const compose = parse(readText("deploy/compose.yaml"), { merge: true }) as { services: Record<string, { command?: string[]; depends_on?: Record<string, { condition: string }>; environment?: Record<string, string> }> };
    const welcome = compose.services.welcome!;
    assert.equal(welcome.depends_on?.gateway?.condition, "service_healthy", "printed once the gateway is up");
    // Compose turns $$ into $ before running it.
    const script = welcome.command![2]!.replace(/\$\$/g, "$");
    const printed = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    assert.equal(printed.status, 0, printed.stderr);
    assert.match(printed.stdout, /POST http:\/\/127\.0\.0\.1:8080\/admin\/v1\/accounts/);
    assert.match(readText("services/gateway/handlers/admin.routes.ts"), /pattern: \/\^\\\/accounts\$\//, "the admin API's create-account route");
    const plan = /\\?"plan\\?":\\?"(\w+)\\?"/.exec(printed.stdout)?.[1];
    assert.ok((JSON.parse(readText("deploy/plans/plans.json")) as { plans: { code: string }[] }).plans.some((candidate) => candidate.code === plan), `plan ${plan} exists`);
    assert.ok(compose.services.gateway!.environment!.CUTLINE_ADMIN_TOKEN, "the gateway gets the admin token the instructions use");
    for (const name of ["postgres", "nats", ...SERVICES]) assert.ok(compose.services[name], `compose runs ${name}`);
  });
});

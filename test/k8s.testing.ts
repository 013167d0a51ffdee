// What the k8s specs share: rendering kustomize (kubectl kustomize or kustomize build), validating
// every object against the Kubernetes and operators' schemas (kubernetes-models and the
// @kubernetes-models operator packages), the services' own config specs, and typed views of the
// rendered objects. Fixtures for test/k8s-*.spec.ts only.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parse, parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { Job } from "kubernetes-models/batch/v1/Job";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";
import { Cluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster";
import { Pooler } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Pooler";
import { ScheduledBackup } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/ScheduledBackup";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { commonConfigSpec } from "../services/common/common.config.ts";

export const root = resolve(import.meta.dirname, "..");
export const SERVICES = ["gateway", "billing", "orchestrator", "inference"] as const;
export type ServiceName = (typeof SERVICES)[number];
export const DEFAULT_PORTS: Record<ServiceName, number> = { gateway: 8080, billing: 8081, orchestrator: 8082, inference: 8083 };
/** runMain (services/common/runtime.ts) exits this long after SHUTDOWN_TIMEOUT_MS at the latest. */
export const RUN_MAIN_MARGIN_MS = 5000;
export const SHUTDOWN_TIMEOUT_MS_DEFAULT = 10_000;
export const METRICS_PORT_DEFAULT = commonConfigSpec.METRICS_PORT.defaultValue;

// ---- minimal typed views of the rendered objects --------------------------------------------------

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: { name: string; key: string } };
}
export interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: unknown;
  tcpSocket?: unknown;
  exec?: unknown;
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string }[];
}
export interface PodSpec {
  containers: Container[];
  runtimeClassName?: string;
  topologySpreadConstraints?: { topologyKey: string; whenUnsatisfiable?: string; labelSelector: { matchLabels: Record<string, string> } }[];
  terminationGracePeriodSeconds?: number;
  enableServiceLinks?: boolean;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  affinity?: { nodeAffinity?: unknown };
  nodeSelector?: Record<string, string>;
  volumes?: { name: string; emptyDir?: object }[];
}
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // eslint-style escape hatch: the rendered spec is read per kind below.
  spec?: any;
  data?: Record<string, string>;
}
export interface DeploymentObject extends K8sObject {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
}

// ---- rendering --------------------------------------------------------------------------------

export function findRenderer(): { command: string; args: string[] } | undefined {
  for (const candidate of [
    { command: "kustomize", args: ["build"] },
    { command: "kubectl", args: ["kustomize"] },
  ]) {
    const probe = spawnSync(candidate.command, candidate.command === "kustomize" ? ["version"] : ["version", "--client"], { encoding: "utf8" });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}
export const renderer = findRenderer();
export const skipRendering = renderer ? false : "neither kustomize nor kubectl is on PATH (apt-get install kubectl)";

export function render(directory: string): K8sObject[] {
  assert.ok(renderer);
  const result = spawnSync(renderer.command, [...renderer.args, directory], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, `${renderer.command} ${renderer.args.join(" ")} ${directory} failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((document) => document.toJS() as K8sObject | null)
    .filter((object): object is K8sObject => object !== null);
}

/** Renders a throw-away kustomization beside nothing in the repo: a base plus components. */
export function renderComposition(resources: string[], components: string[], extra: (directory: string) => void = () => {}): K8sObject[] {
  const directory = mkdtempSync(join(tmpdir(), "cutline-kustomize-"));
  try {
    extra(directory);
    writeFileSync(
      join(directory, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        // As in the overlays: objects from components get the namespace too, so references match.
        "namespace: cutline",
        "resources:",
        // kustomize refuses absolute roots: name them relative to the temporary directory.
        ...resources.map((path) => `  - ${relative(directory, path)}`),
        ...(components.length > 0 ? ["components:", ...components.map((path) => `  - ${relative(directory, resolve(directory, path))}`)] : []),
        "",
      ].join("\n"),
    );
    return render(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

// ---- schema validation ------------------------------------------------------------------------

export type Validating = new (data: never) => { validate(): void };
export const MODELS: Record<string, Validating> = {
  "v1/Namespace": Namespace as unknown as Validating,
  "v1/ConfigMap": ConfigMap as unknown as Validating,
  "v1/Secret": Secret as unknown as Validating,
  "v1/Service": Service as unknown as Validating,
  "apps/v1/Deployment": Deployment as unknown as Validating,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget as unknown as Validating,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler as unknown as Validating,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy as unknown as Validating,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject as unknown as Validating,
  "networking.k8s.io/v1/Ingress": Ingress as unknown as Validating,
  "batch/v1/Job": Job as unknown as Validating,
  "cert-manager.io/v1/Certificate": Certificate as unknown as Validating,
  "postgresql.cnpg.io/v1/Cluster": Cluster as unknown as Validating,
  "postgresql.cnpg.io/v1/Pooler": Pooler as unknown as Validating,
  "postgresql.cnpg.io/v1/ScheduledBackup": ScheduledBackup as unknown as Validating,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor as unknown as Validating,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule as unknown as Validating,
};

export function validateSchemas(objects: K8sObject[]): void {
  for (const object of objects) {
    const key = `${object.apiVersion}/${object.kind}`;
    const Model = MODELS[key];
    assert.ok(Model, `${key} ${object.metadata.name}: no schema model registered in this test; add one`);
    const data = structuredClone(object);
    // kustomize wraps long base64 values over lines, which the API server's decoder skips.
    if (data.kind === "Secret" && data.data) for (const name of Object.keys(data.data)) data.data[name] = data.data[name]!.replace(/\s+/g, "");
    assert.doesNotThrow(() => new Model(data as never).validate(), `${key} ${object.metadata.name} fails its schema`);
  }
}

// ---- the services' own configuration ------------------------------------------------------------

export interface Variable {
  description: string;
  defaultValue: unknown;
  parse(raw: string): unknown;
}
export function isVariable(value: unknown): value is Variable {
  return typeof value === "object" && value !== null && typeof (value as Variable).parse === "function" && typeof (value as Variable).description === "string";
}

/** Every exported spec object (a record of Variables) of a module, merged. */
export async function specsOf(file: string): Promise<Map<string, Variable>> {
  const variables = new Map<string, Variable>();
  const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  for (const exported of Object.values(module)) {
    if (typeof exported !== "object" || exported === null) continue;
    const entries = Object.entries(exported);
    if (entries.length === 0 || !entries.every(([, value]) => isVariable(value))) continue;
    for (const [name, variable] of entries) variables.set(name, variable as Variable);
  }
  return variables;
}

// What the brief for the mesh promised, used only where a service has no config module yet.
export const DOCUMENTED: Record<ServiceName, string[]> = {
  gateway: ["UPLOAD_BYTES_MAX", "SYNC_TIMEOUT_MS", "CUTLINE_API_KEY", "BILLING_URL", "ORCHESTRATOR_URL", "INFERENCE_URL"],
  billing: [],
  orchestrator: ["BILLING_URL"],
  inference: ["INFERENCE_EXECUTION_PROVIDERS", "INFERENCE_BATCH_SIZE_MAX", "INFERENCE_QUEUE_DELAY_MS_MAX"],
};
export const COMMON_DOCUMENTED = ["PORT", "HOST", "DATABASE_URL", "NATS_URL", "LOG_LEVEL", "SHUTDOWN_TIMEOUT_MS", "CUTLINE_DATA_DIR"];

/**
 * The variables a service reads: its own services/<name>/<name>.config.ts, its entry in
 * services/single-node.config.ts, plus every *config.ts its main.ts imports. A service without main.ts yet
 * also gets the common specs and PORT, which its main will read.
 */
export async function configOf(service: ServiceName): Promise<{ variables: Map<string, Variable>; known: Set<string>; source: string }> {
  const directory = join(root, "services", service);
  const files = new Set<string>();
  const own = join(directory, `${service}.config.ts`);
  if (existsSync(own)) files.add(own);
  const main = join(directory, "main.ts");
  if (existsSync(main)) {
    for (const match of readFileSync(main, "utf8").matchAll(/from\s+"(\.{1,2}\/[^"]*config\.ts)"/g)) files.add(resolve(directory, match[1]!));
  } else {
    const common = join(root, "services/common/common.config.ts");
    if (existsSync(common)) files.add(common);
  }
  const variables = new Map<string, Variable>();
  for (const file of files) for (const [name, variable] of await specsOf(file)) variables.set(name, variable);
  // services/single-node.config.ts, where present, names each service's full spec.
  const registry = join(root, "services/single-node.config.ts");
  if (existsSync(registry)) {
    const { configSpecs } = (await import(pathToFileURL(registry).href)) as { configSpecs?: Record<string, Record<string, unknown>> };
    for (const [name, variable] of Object.entries(configSpecs?.[service] ?? {})) if (isVariable(variable)) variables.set(name, variable);
    if (configSpecs?.[service]) files.add(registry);
  }
  const known = new Set(variables.keys());
  if (!existsSync(main)) known.add("PORT");
  if (files.size === 0) for (const name of [...COMMON_DOCUMENTED, ...DOCUMENTED[service]]) known.add(name);
  const source = files.size > 0 ? [...files].map((file) => file.slice(root.length + 1)).join(", ") : "the documented list";
  return { variables, known, source };
}

// ---- helpers ------------------------------------------------------------------------------------

export function cpuCores(quantity: string | number | undefined): number {
  if (quantity === undefined) return Number.NaN;
  const text = String(quantity);
  return text.endsWith("m") ? Number(text.slice(0, -1)) / 1000 : Number(text);
}
export const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
export const DECIMAL: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
export function bytes(quantity: string | number | undefined): number {
  if (quantity === undefined) return Number.NaN;
  const match = /^(\d+(?:\.\d+)?)([KMGT]i|[kMGT])?$/.exec(String(quantity));
  assert.ok(match, `unparsed memory quantity ${quantity}`);
  const unit = match[2];
  return Number(match[1]) * (unit === undefined ? 1 : (BINARY[unit] ?? DECIMAL[unit]!));
}

export function byKind<T extends K8sObject = K8sObject>(objects: K8sObject[], kind: string): T[] {
  return objects.filter((object) => object.kind === kind) as T[];
}
export function one<T extends K8sObject = K8sObject>(objects: K8sObject[], kind: string, name: string): T {
  const found = objects.filter((object) => object.kind === kind && object.metadata.name === name);
  assert.equal(found.length, 1, `expected exactly one ${kind} ${name}, found ${found.length}`);
  return found[0] as T;
}
export function containerOf(deployment: DeploymentObject): Container {
  const containers = deployment.spec.template.spec.containers;
  assert.equal(containers.length, 1, `${deployment.metadata.name}: one container`);
  return containers[0]!;
}
/** An image reference split at its tag: `cutline-inference:0.1.0-cuda` → cutline-inference, 0.1.0-cuda. */
export function imageParts(image: string): { name: string; tag: string } {
  const match = /^(.+):([\w.-]+)$/.exec(image);
  assert.ok(match, `image ${image} has a tag`);
  return { name: match[1]!, tag: match[2]! };
}

export interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string; target?: string };
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, unknown>;
}
/** A compose file's services, with YAML merge keys (`<<: *service`) applied. */
export function composeServices(file: string): Record<string, ComposeService> {
  return (parse(readFileSync(join(root, file), "utf8"), { merge: true }) as { services: Record<string, ComposeService> }).services;
}

export function grpcPort(container: Container): number {
  const port = container.ports?.find((candidate) => candidate.name === "grpc");
  assert.ok(port, `${container.name}: a container port named grpc`);
  return port.containerPort;
}

/** The container's environment as the process will see it (envFrom first, env wins), secrets as markers. */
export function environmentOf(objects: K8sObject[], container: Container): Map<string, { value?: string; secret?: { name: string; key: string } }> {
  const environment = new Map<string, { value?: string; secret?: { name: string; key: string } }>();
  for (const source of container.envFrom ?? []) {
    assert.ok(source.configMapRef, `${container.name}: envFrom only from ConfigMaps (secrets by key, so each is explicit)`);
    const configMap = one(objects, "ConfigMap", source.configMapRef.name);
    for (const [name, value] of Object.entries(configMap.data ?? {})) environment.set(name, { value });
  }
  for (const variable of container.env ?? []) {
    if (variable.valueFrom?.secretKeyRef) environment.set(variable.name, { secret: variable.valueFrom.secretKeyRef });
    else {
      assert.equal(typeof variable.value, "string", `${container.name}: ${variable.name} has a literal value or a secretKeyRef`);
      environment.set(variable.name, { value: variable.value });
    }
  }
  return environment;
}


// ---- NetworkPolicies ------------------------------------------------------------------------------

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}
export interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: unknown;
}
export interface PolicyObject extends K8sObject {
  spec: { podSelector: LabelSelector; policyTypes?: string[]; ingress?: { from?: PolicyPeer[]; ports?: { port?: string | number; protocol?: string }[] }[]; egress?: unknown[] };
}
/** Where a connection comes from: a pod (its namespace's and its own labels), or outside the cluster. */
export type Source = { namespace: Record<string, string>; pod: Record<string, string> } | "outside";

export function selects(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  assert.ok(!selector?.matchExpressions?.length, "this evaluator reads matchLabels only; extend it for matchExpressions");
  return Object.entries(selector?.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
}

/**
 * Whether the rendered policies let `source` connect to `port` (a container port name or number) of
 * pods labelled `target` in `namespace`, by the NetworkPolicy rules: a pod no policy selects is
 * open; otherwise some selecting policy must have an ingress rule whose ports and peers match.
 */
export function admits(policies: PolicyObject[], target: Record<string, string>, port: string | number, source: Source, namespace = "cutline"): boolean {
  const selecting = policies.filter((policy) => (policy.spec.policyTypes ?? ["Ingress"]).includes("Ingress") && selects(policy.spec.podSelector, target));
  if (selecting.length === 0) return true;
  const own = { "kubernetes.io/metadata.name": namespace };
  return selecting.some((policy) =>
    (policy.spec.ingress ?? []).some((rule) => {
      const portMatches = (rule.ports ?? []).length === 0 || rule.ports!.some((each) => String(each.port) === String(port) && (each.protocol ?? "TCP") === "TCP");
      if (!portMatches) return false;
      if ((rule.from ?? []).length === 0) return true;
      return rule.from!.some((peer) => {
        assert.equal(peer.ipBlock, undefined, "this evaluator reads pod and namespace selectors only; extend it for ipBlock");
        if (source === "outside") return false;
        const namespaceMatches = peer.namespaceSelector === undefined ? selects({ matchLabels: own }, source.namespace) : selects(peer.namespaceSelector, source.namespace);
        return namespaceMatches && (peer.podSelector === undefined || selects(peer.podSelector, source.pod));
      });
    }),
  );
}

/** Which Secret holds a variable: each service's database role its own, NATS's user its own, the rest cutline-secrets. */
export function secretOf(variable: string, service: ServiceName): string {
  if (variable === "DATABASE_URL") return `cutline-db-${service}`;
  if (variable === "NATS_USER" || variable === "NATS_PASSWORD") return "cutline-nats";
  return "cutline-secrets";
}

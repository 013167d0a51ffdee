// One chaos run: the four services as separate processes on real Postgres and NATS, a funded
// account on the unlimited plan, image jobs at bounded concurrency, and faults between them
// (inference SIGKILLed mid-job, nats-server restarted, Postgres backends terminated). Then a
// bounded settle period, and an audit of every job's money trail (scripts/chaos-audit.ts).
import { Code, createClient, ConnectError, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setMaxListeners } from "node:events";
import { createInterface } from "node:readline";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNats } from "@nats-io/transport-node";
import pg from "pg";
import sharp from "sharp";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { JobService, JobStatus, type Job } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { openDatabase } from "../services/common/database.ts";
import { auditRun, pendingWork, type ClientRecord, type Violation } from "./chaos-audit.ts";
import { privateNats, sleep, systemNats, terminatePostgresBackends, type RestartableNats } from "./chaos-faults.ts";
import { freePort } from "./mesh-processes.ts";
import type { InvariantViolation } from "../services/billing/store/invariants.ts";

export interface ChaosOptions {
  /** Jobs to send (requests, each retried with its idempotency key). @default 100 */
  jobs: number;
  /** Longest load phase in seconds; no new job starts after it. @default 120 */
  seconds: number;
  /** Seed of every random choice (images, modes, fault kinds and timing). @default random */
  seed: number;
  /** Jobs in flight at once. @default 4 */
  concurrency: number;
  /** Mean seconds between faults (each gap is drawn from 0.5–1.5 times it). @default 6 */
  faultEverySeconds: number;
  /** HOLD_TTL_SECONDS given to the gateway; short, so expiry happens within the run. @default 60 */
  holdTtlSeconds: number;
  /** JOB_QUIET_MS_MAX given to the orchestrator, in seconds: how soon a lost job is reconciled. @default 20 */
  jobQuietSeconds: number;
  /** Longest settle period after the load, in seconds. @default hold TTL + 3 × job quiet + 30 */
  settleSeconds?: number;
  /** Start a private nats-server on a free port instead of restarting the machine's. @default false */
  privateNats: boolean;
  /** Postgres server (a database of the run's own is created on it and dropped after). */
  databaseUrl: string;
  /** Keep the run's database and service logs for inspection. @default false */
  keep: boolean;
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
}

export interface ChaosSummary {
  jobs: number;
  faults: number;
  faultsByKind: Record<string, number>;
  lostCredits: number;
  doubleCharged: number;
  freeResults: number;
  chargeMismatches: number;
  /** Requests whose last answer to the client was an error while their job succeeded and was charged (a retry with the key gets the result). */
  chargedErrors: number;
  /** Async jobs the client tried to cancel while they ran. */
  cancels: number;
  unfinished: number;
  holdsOpen: number;
  ledgerViolations: number;
  crashes: Record<string, number>;
  outcomes: Record<string, number>;
  jobsByStatus: Record<string, number>;
  holdsByStatus: Record<string, number>;
  grantedMillicredits: number;
  remainingMillicredits: number;
  capturedMillicredits: number;
  seconds: number;
  settleSeconds: number;
  seed: number;
  logDirectory: string;
  database: string;
  natsPrefix: string;
}

export interface ChaosReport {
  summary: ChaosSummary;
  /** What the client saw of each request, in the order they ended. */
  records: ClientRecord[];
  violations: Violation[];
  ledger: InvariantViolation[];
  /** True when no money or lifecycle rule broke. */
  ok: boolean;
}

const SERVICES = ["billing", "orchestrator", "inference", "gateway"] as const;
type ServiceName = (typeof SERVICES)[number];
const ACCOUNT_ID = "chaos";
const FUNDING_MILLICREDITS = 100_000_000n;
const root = join(import.meta.dirname, "..");

/** Mulberry32: small, seedable, good enough to make a run repeatable in its choices. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The four services as processes, each one restartable on its own (mesh-processes.ts starts all four at once). */
class ChaosMesh {
  readonly urls: Record<ServiceName, string>;
  readonly crashes: Record<string, number> = {};
  private readonly children = new Map<ServiceName, ChildProcess>();
  private readonly killedOnPurpose = new Set<ChildProcess>();
  private readonly logs = new Map<ServiceName, WriteStream>();
  private stopping = false;
  /** Set once every service has served: an exit before that is a failed start, retried, not a crash. */
  running = false;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly ports: Record<ServiceName, number>,
    readonly logDirectory: string,
    private readonly log: (line: string) => void,
  ) {
    this.urls = Object.fromEntries(SERVICES.map((name) => [name, `http://127.0.0.1:${ports[name]}`])) as Record<ServiceName, string>;
    for (const name of SERVICES) this.logs.set(name, createWriteStream(join(logDirectory, `${name}.log`), { flags: "a" }));
  }

  start(name: ServiceName): void {
    if (this.stopping) return;
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "services", name, "main.ts")], {
      cwd: root,
      env: { ...this.env, PORT: String(this.ports[name]), METRICS_PORT: "0", BILLING_URL: this.urls.billing, ORCHESTRATOR_URL: this.urls.orchestrator, INFERENCE_URL: this.urls.inference },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.children.set(name, child);
    const logFile = this.logs.get(name)!;
    logFile.write(`--- ${new Date().toISOString()} started pid ${child.pid}\n`);
    for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", (line) => logFile.write(`${line}\n`));
    child.once("exit", (code, signal) => {
      logFile.write(`--- ${new Date().toISOString()} pid ${child.pid} exited code ${code} signal ${signal}\n`);
      if (this.stopping || this.killedOnPurpose.has(child)) return;
      // A service that dies on its own is a finding; it is counted and started again so the run goes on.
      if (this.running) this.crashes[name] = (this.crashes[name] ?? 0) + 1;
      this.log(`${this.running ? "CRASH" : "failed start"}: ${name} (pid ${child.pid}) exited by itself with code ${code} signal ${signal}; restarting it (see ${logFile.path})`);
      setTimeout(() => this.start(name), 1000);
    });
  }

  async kill(name: ServiceName): Promise<void> {
    const child = this.children.get(name);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.killedOnPurpose.add(child);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async waitServing(name: ServiceName, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const response = await fetch(`${this.urls[name]}/grpc.health.v1.Health/Check`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
          signal: AbortSignal.timeout(2000),
        });
        if (((await response.json()) as { status?: string }).status === "SERVING") return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${name} not SERVING within ${timeoutMs} ms (log: ${join(this.logDirectory, `${name}.log`)})`);
      await sleep(250);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const exits = [...this.children.values()]
      .filter((child) => child.exitCode === null && child.signalCode === null)
      .map((child) => new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        child.once("exit", () => (clearTimeout(timer), resolve()));
        child.kill("SIGTERM");
      }));
    await Promise.all(exits);
    await Promise.all([...this.logs.values()].map((stream) => new Promise((resolve) => stream.end(resolve))));
  }
}

/** A small photo-like image with a random subject, so every job is its own input. */
async function randomImage(random: () => number): Promise<Uint8Array> {
  const width = 64 + Math.floor(random() * 193);
  const height = 64 + Math.floor(random() * 193);
  const colour = () => Math.floor(random() * 256);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="${width}" height="${height}" fill="rgb(${colour()},${colour()},${colour()})"/>
    <circle cx="${width / 2}" cy="${height / 2}" r="${Math.min(width, height) * (0.2 + random() * 0.25)}" fill="rgb(${colour()},${colour()},${colour()})"/></svg>`;
  return new Uint8Array(await (random() < 0.5 ? sharp(Buffer.from(svg)).png() : sharp(Buffer.from(svg)).jpeg({ quality: 85 })).toBuffer());
}

/** "1.3" -> 1300 millicredits, exactly. */
function millicreditsOf(credits: string): number {
  const [whole = "0", fraction = ""] = credits.split(".");
  return Number(whole) * 1000 + Number(fraction.padEnd(3, "0").slice(0, 3));
}

const RETRY_ATTEMPTS_MAX = 4;
const CLIENT_TIMEOUT_MS = 90_000;
/** How long after the load phase clients may still wait for their jobs. */
const CLIENT_GRACE_MS = 30_000;

/** A client that retries server faults with the same idempotency key, as a real integration would. */
class ChaosClient {
  private readonly jobs: Client<typeof JobService>;

  constructor(
    private readonly gatewayUrl: string,
    private readonly apiKey: string,
    /** Aborted when the run stops waiting for clients; a request cut off there is audited from the database. */
    private readonly stop: AbortSignal,
  ) {
    this.jobs = createClient(JobService, createGrpcTransport({ baseUrl: gatewayUrl }));
  }

  async sync(key: string, image: Uint8Array): Promise<ClientRecord> {
    const record: ClientRecord = { key, mode: "sync", outcome: "error:none", gotResult: false, attempts: 0 };
    for (;;) {
      record.attempts += 1;
      const form = new FormData();
      form.append("image_file", new Blob([image]), "input");
      try {
        const response = await fetch(`${this.gatewayUrl}/v1/matting`, {
          method: "POST",
          headers: { "x-api-key": this.apiKey, "idempotency-key": key },
          body: form,
          signal: AbortSignal.any([AbortSignal.timeout(CLIENT_TIMEOUT_MS), this.stop]),
        });
        const body = new Uint8Array(await response.arrayBuffer());
        record.jobId = response.headers.get("x-job-id") ?? record.jobId;
        if (response.ok) {
          record.outcome = "succeeded";
          record.gotResult = body.byteLength > 0;
          const charged = response.headers.get("x-credits-charged");
          if (charged !== null) record.chargedMillicredits = millicreditsOf(charged);
          return record;
        }
        let code = String(response.status);
        try {
          code = `${response.status}:${(JSON.parse(new TextDecoder().decode(body)) as { errors?: { code?: string }[] }).errors?.[0]?.code ?? ""}`;
        } catch {
          // not JSON
        }
        record.outcome = response.status >= 500 || response.status === 429 ? `error:${code}` : `failed:${code}`;
        if (response.status < 500 && response.status !== 429) return record;
      } catch (error) {
        record.outcome = `error:${this.stop.aborted ? "abandoned" : (error as Error).name === "TimeoutError" ? "client_timeout" : "network"}`;
      }
      if (record.attempts >= RETRY_ATTEMPTS_MAX || this.stop.aborted) return record;
      await sleep(500 * 2 ** record.attempts);
    }
  }

  /** `cancelAfterMs`: cancel the job that long after submitting it, racing its result (a cancel must never leave a charge or a free result). */
  async async(key: string, image: Uint8Array, cancelAfterMs?: number): Promise<ClientRecord> {
    const record: ClientRecord = { key, mode: "async", outcome: "error:none", gotResult: false, attempts: 0 };
    const headers = { "x-api-key": this.apiKey };
    for (;;) {
      record.attempts += 1;
      try {
        const submitted = await this.jobs.submit(
          { image, idempotencyKey: key, options: { format: OutputFormat.PNG } },
          { headers, timeoutMs: 30_000, signal: this.stop },
        );
        record.jobId = submitted.job?.id;
        break;
      } catch (error) {
        const connectError = ConnectError.from(error);
        record.jobId = connectError.metadata.get("cutline-job-id") ?? record.jobId;
        record.outcome = `error:${this.stop.aborted ? "abandoned" : (connectError.metadata.get("cutline-reason") ?? Code[connectError.code])}`;
        if (this.stop.aborted) return record;
        if (record.attempts >= RETRY_ATTEMPTS_MAX || !retryable(connectError)) {
          if (!retryable(connectError)) record.outcome = `failed:${connectError.metadata.get("cutline-reason") ?? Code[connectError.code]}`;
          return record;
        }
        await sleep(500 * 2 ** record.attempts);
      }
    }
    if (cancelAfterMs !== undefined && record.jobId) {
      const jobId = record.jobId;
      setTimeout(() => {
        record.cancelAttempted = true;
        this.jobs.cancelJob({ jobId }, { headers, timeoutMs: 10_000, signal: this.stop }).catch(() => {});
      }, cancelAfterMs);
    }
    const job = await this.#waitForEnd(record.jobId!, headers);
    if (!job) {
      record.outcome = this.stop.aborted ? "error:abandoned" : "error:no_outcome";
      return record;
    }
    this.#recordJob(record, job);
    return record;
  }

  #recordJob(record: ClientRecord, job: Job): void {
    record.outcome = job.status === JobStatus.SUCCEEDED ? "succeeded" : job.status === JobStatus.CANCELLED ? "cancelled" : `failed:${job.errorReason || "unknown"}`;
    record.gotResult = job.status === JobStatus.SUCCEEDED;
    record.chargedMillicredits = Number(job.creditsChargedMillicredits);
  }

  /** Watches the job; when the stream breaks (a fault), polls GetJob until it ends or the client gives up. */
  async #waitForEnd(jobId: string, headers: Record<string, string>): Promise<Job | undefined> {
    const deadline = Date.now() + CLIENT_TIMEOUT_MS;
    const terminal = (job: Job | undefined) => job !== undefined && [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED].includes(job.status);
    try {
      for await (const update of this.jobs.watchJob({ jobId }, { headers, timeoutMs: CLIENT_TIMEOUT_MS, signal: this.stop })) {
        if (terminal(update.job)) return update.job;
      }
    } catch {
      // the watch broke; poll below
    }
    while (Date.now() < deadline && !this.stop.aborted) {
      try {
        const { job } = await this.jobs.getJob({ jobId }, { headers, timeoutMs: 10_000, signal: this.stop });
        if (terminal(job)) return job;
      } catch {
        // a fault in progress; try again
      }
      await sleep(1000);
    }
    return undefined;
  }

  /** The job as the client would read it after the run, for requests whose outcome it never saw. */
  async finalRead(record: ClientRecord): Promise<void> {
    if (!record.jobId || record.outcome === "succeeded" || record.outcome.startsWith("failed") || record.outcome === "cancelled") return;
    try {
      const { job } = await this.jobs.getJob({ jobId: record.jobId }, { headers: { "x-api-key": this.apiKey }, timeoutMs: 10_000 });
      if (job && [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED].includes(job.status)) this.#recordJob(record, job);
    } catch {
      // left as the client last saw it
    }
  }
}

/** Server faults and limits a client retries with the same key; user errors are final. */
function retryable(error: ConnectError): boolean {
  return [Code.Unavailable, Code.Internal, Code.Unknown, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Aborted].includes(error.code);
}

async function createRunDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropRunDatabase(serverUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** Deletes the run's streams and buckets so repeated runs do not fill the server's store. */
async function deleteNatsNames(natsUrl: string, prefix: string): Promise<void> {
  const connection = await connectNats({ servers: natsUrl, timeout: 5000 });
  try {
    const manager = await jetstreamManager(connection);
    for await (const stream of manager.streams.list()) {
      const name = stream.config.name;
      if (name.startsWith(`${prefix}_`) || name.startsWith(`OBJ_${prefix}_`) || name.startsWith(`KV_${prefix}_`)) await manager.streams.delete(name);
    }
  } finally {
    await connection.close();
  }
}

type FaultKind = "inference_kill" | "nats_restart" | "postgres_terminate";

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const random = randomSource(options.seed);
  const runId = randomBytes(4).toString("hex");
  const databaseName = `cutline_chaos_${runId}`;
  const natsPrefix = `chaos_${runId}`;
  const logDirectory = mkdtempSync(join(tmpdir(), `cutline-chaos-${runId}-`));
  const dataDirectory = join(logDirectory, "data");
  const apiKey = `cl_chaos_${randomBytes(12).toString("hex")}`;
  const nats: RestartableNats = options.privateNats ? await privateNats() : systemNats();
  await nats.ensureRunning();
  // Whatever ends the run (an error, Ctrl-C, a kill of this process short of SIGKILL), the NATS
  // server it stopped is started again before it exits.
  const onSignal = (signal: NodeJS.Signals) => {
    options.log(`${signal}: restoring nats-server before exit`);
    void nats.ensureRunning().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const databaseUrl = await createRunDatabase(options.databaseUrl, databaseName);
  const ports = Object.fromEntries(await Promise.all(SERVICES.map(async (name) => [name, await freePort()]))) as Record<ServiceName, number>;
  const serviceToken = randomBytes(16).toString("hex");
  const mesh = new ChaosMesh(
    {
      ...process.env,
      DATABASE_URL: databaseUrl,
      NATS_URL: nats.url,
      NATS_NAME_PREFIX: natsPrefix,
      CUTLINE_DATA_DIR: dataDirectory,
      CUTLINE_API_KEY: apiKey,
      CUTLINE_ACCOUNT_ID: ACCOUNT_ID,
      CUTLINE_SERVICE_TOKEN: serviceToken,
      CUTLINE_RESULT_URL_KEY: randomBytes(32).toString("hex"),
      HOLD_TTL_SECONDS: String(options.holdTtlSeconds),
      // The reconciler settles jobs whose task or outcome a fault lost; at its 5-minute default a
      // run would wait minutes for it, so it looks often and takes a job quiet for jobQuietSeconds as lost.
      JOB_QUIET_MS_MAX: String(options.jobQuietSeconds * 1000),
      RECONCILE_INTERVAL_MS: "2000",
      BILLING_SWEEP_INTERVAL_MS: "1000",
      SYNC_TIMEOUT_MS: "60000",
      LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
    },
    ports,
    logDirectory,
    options.log,
  );
  const database = openDatabase<any>({ kind: "postgres", url: databaseUrl, poolSizeMax: 2 });
  const records: ClientRecord[] = [];
  const faultsByKind: Record<string, number> = {};
  let settleSeconds = 0;
  try {
    for (const name of SERVICES) mesh.start(name);
    await Promise.all(SERVICES.map((name) => mesh.waitServing(name, 180_000)));
    mesh.running = true;
    // Internal RPCs need the mesh's service token (SERVICE_TOKEN_HEADER in services/common/service-auth.ts).
    const billing = createClient(BillingService, createGrpcTransport({ baseUrl: mesh.urls.billing }));
    const callOptions = { headers: { "cutline-service-token": serviceToken } };
    await billing.changePlan({ accountId: ACCOUNT_ID, planCode: "unlimited" }, callOptions);
    await billing.grant(
      { accountId: ACCOUNT_ID, pool: Pool.API, kind: "top_up", amountMillicredits: FUNDING_MILLICREDITS, idempotencyKey: "chaos-funding", description: "chaos run" },
      callOptions,
    );
    options.log(`chaos ${runId}: mesh up in ${Math.round((Date.now() - started) / 1000)} s; database ${databaseName}, NATS prefix ${natsPrefix}, logs ${logDirectory}`);

    const stopClients = new AbortController();
    // Every request in flight listens on it; the count is bounded by the concurrency, not by Node's default of 10.
    setMaxListeners(0, stopClients.signal);
    const client = new ChaosClient(mesh.urls.gateway, apiKey, stopClients.signal);
    const loadEndsAt = Date.now() + options.seconds * 1000;
    // Requests still in flight this long after the load phase are cut off (the audit reads their jobs from the database).
    const cutOff = setTimeout(() => stopClients.abort(), options.seconds * 1000 + CLIENT_GRACE_MS);
    let next = 0;
    let loadDone = false;
    const worker = async () => {
      while (next < options.jobs && Date.now() < loadEndsAt) {
        const index = next++;
        const image = await randomImage(random);
        const key = `chaos-${runId}-${index}`;
        const roll = random();
        records.push(roll < 0.5 ? await client.sync(key, image) : await client.async(key, image, roll > 0.85 ? random() * 4000 : undefined));
      }
    };
    const faults = async () => {
      while (!loadDone) {
        await sleep(options.faultEverySeconds * 1000 * (0.5 + random()));
        if (loadDone) break;
        const roll = random();
        const kind: FaultKind = roll < 0.4 ? "inference_kill" : roll < 0.7 ? "nats_restart" : "postgres_terminate";
        try {
          if (kind === "inference_kill") {
            // Mid-job: wait (briefly) until some job is running, then kill without warning.
            for (let tries = 0; tries < 50; tries++) {
              const running = await database.db.selectFrom("jobs").select("id").where("status", "=", "running").limit(1).execute().catch(() => []);
              if (running.length > 0) break;
              await sleep(100);
            }
            await mesh.kill("inference");
            await sleep(500 + random() * 2500);
            mesh.start("inference");
            await mesh.waitServing("inference", 120_000);
          } else if (kind === "nats_restart") {
            await nats.restart(500 + random() * 3000);
          } else {
            const terminated = await terminatePostgresBackends(databaseUrl);
            options.log(`fault postgres_terminate: ${terminated} backends`);
          }
          faultsByKind[kind] = (faultsByKind[kind] ?? 0) + 1;
          options.log(`fault ${kind} #${faultsByKind[kind]} at ${Math.round((Date.now() - started) / 1000)} s; ${records.length} jobs done`);
        } catch (error) {
          faultsByKind[`${kind}_failed`] = (faultsByKind[`${kind}_failed`] ?? 0) + 1;
          options.log(`fault ${kind} could not be injected: ${(error as Error).message}`);
        }
      }
    };
    const faultLoop = faults();
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    clearTimeout(cutOff);
    loadDone = true;
    await faultLoop;
    await nats.ensureRunning();
    await mesh.waitServing("inference", 120_000);
    options.log(`load done: ${records.length} jobs in ${Math.round((Date.now() - started) / 1000)} s; settling`);

    const settleStarted = Date.now();
    const settleLimitMs = (options.settleSeconds ?? options.holdTtlSeconds + 3 * options.jobQuietSeconds + 30) * 1000;
    for (;;) {
      const pending = await pendingWork(database.db, ACCOUNT_ID).catch(() => ({ jobs: -1, holds: -1 }));
      if (pending.jobs === 0 && pending.holds === 0) break;
      if (Date.now() - settleStarted > settleLimitMs) {
        options.log(`settle limit reached with ${pending.jobs} jobs queued/running and ${pending.holds} holds open`);
        break;
      }
      await sleep(1000);
    }
    settleSeconds = Math.round((Date.now() - settleStarted) / 1000);
    // A request answered without a job id is found by its idempotency key, as the client could by retrying with it.
    const keyed = await database.db.selectFrom("jobs").select(["id", "idempotency_key"]).where("account_id", "=", ACCOUNT_ID).execute();
    const jobIdByKey = new Map(keyed.map((row: { id: string; idempotency_key: string }) => [row.idempotency_key, row.id]));
    for (const record of records) record.jobId ??= jobIdByKey.get(record.key);
    for (const record of records) await client.finalRead(record);
    const audit = await auditRun(database.db, ACCOUNT_ID, records);
    const outcomes: Record<string, number> = {};
    for (const record of records) outcomes[record.outcome] = (outcomes[record.outcome] ?? 0) + 1;
    const summary: ChaosSummary = {
      jobs: records.length,
      faults: Object.entries(faultsByKind).filter(([kind]) => !kind.endsWith("_failed")).reduce((sum, [, value]) => sum + value, 0),
      faultsByKind,
      lostCredits: audit.lostCredits,
      doubleCharged: audit.doubleCharged,
      freeResults: audit.freeResults,
      chargeMismatches: audit.chargeMismatches,
      chargedErrors: records.filter(
        (record) => !record.gotResult && record.outcome !== "error:abandoned" && record.jobId !== undefined && audit.succeededJobIds.has(record.jobId),
      ).length,
      cancels: records.filter((record) => record.cancelAttempted).length,
      unfinished: audit.unfinished,
      holdsOpen: audit.holdsOpen,
      ledgerViolations: audit.ledgerViolations.length,
      crashes: mesh.crashes,
      outcomes,
      jobsByStatus: audit.jobsByStatus,
      holdsByStatus: audit.holdsByStatus,
      grantedMillicredits: audit.grantedMillicredits,
      remainingMillicredits: audit.remainingMillicredits,
      capturedMillicredits: audit.capturedMillicredits,
      seconds: Math.round((Date.now() - started) / 1000),
      settleSeconds,
      seed: options.seed,
      logDirectory,
      database: databaseName,
      natsPrefix,
    };
    const ok =
      summary.lostCredits === 0 &&
      summary.doubleCharged === 0 &&
      summary.freeResults === 0 &&
      summary.chargeMismatches === 0 &&
      summary.unfinished === 0 &&
      summary.holdsOpen === 0 &&
      summary.ledgerViolations === 0 &&
      Object.keys(summary.crashes).length === 0;
    return { summary, records, violations: audit.violations, ledger: audit.ledgerViolations, ok };
  } finally {
    await nats.ensureRunning().catch((error: unknown) => options.log(`COULD NOT RESTART nats-server: ${(error as Error).message}`));
    await mesh.stop();
    await database.close().catch(() => {});
    await deleteNatsNames(nats.url, natsPrefix).catch((error: unknown) => options.log(`could not delete the run's NATS streams: ${(error as Error).message}`));
    await nats.dispose();
    if (!options.keep) {
      await dropRunDatabase(options.databaseUrl, databaseName).catch(() => {});
      rmSync(dataDirectory, { recursive: true, force: true });
    }
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

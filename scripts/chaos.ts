// `npm run chaos`: jobs through the mesh while its parts fail; then every job's money trail is
// audited. Options: --jobs N, --seconds S, --seed N, --concurrency N, --fault-every S,
// --hold-ttl S, --job-quiet S, --settle S, --private-nats, --keep. The LAST stdout line is the JSON summary;
// the exit code is 1 when any rule broke (violations are printed above it, one per line).
import { parseArgs } from "node:util";
import { runChaos } from "./chaos-run.ts";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "100" },
    seconds: { type: "string", default: "120" },
    seed: { type: "string" },
    concurrency: { type: "string", default: "4" },
    "fault-every": { type: "string", default: "6" },
    "hold-ttl": { type: "string", default: "60" },
    "job-quiet": { type: "string", default: "20" },
    settle: { type: "string" },
    "private-nats": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});

function positiveInteger(name: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    console.error(`--${name} must be a whole number from 1 to ${max}; got ${text}`);
    process.exit(2);
  }
  return value;
}

const natsUrl = process.env.NATS_URL;
if (natsUrl && !values["private-nats"] && !/^nats:\/\/(127\.0\.0\.1|localhost):4222\/?$/.test(natsUrl)) {
  console.error(`NATS_URL is ${natsUrl}, but the run restarts the machine's nats-server at 127.0.0.1:4222; unset NATS_URL or pass --private-nats`);
  process.exit(2);
}
if (!process.env.DATABASE_URL) {
  console.error("note: DATABASE_URL is unset; using postgres://postgres@127.0.0.1:5432/test");
}
const report = await runChaos({
  jobs: positiveInteger("jobs", values.jobs, 100_000)!,
  seconds: positiveInteger("seconds", values.seconds, 86_400)!,
  seed: positiveInteger("seed", values.seed, 2 ** 31) ?? Math.floor(Math.random() * 2 ** 31),
  concurrency: positiveInteger("concurrency", values.concurrency, 256)!,
  faultEverySeconds: positiveInteger("fault-every", values["fault-every"], 3600)!,
  holdTtlSeconds: positiveInteger("hold-ttl", values["hold-ttl"], 86_400)!,
  jobQuietSeconds: positiveInteger("job-quiet", values["job-quiet"], 86_400)!,
  settleSeconds: positiveInteger("settle", values.settle, 86_400),
  privateNats: values["private-nats"]!,
  databaseUrl: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  keep: values.keep!,
  log: (line) => console.error(line),
});
for (const record of report.records) {
  if (record.outcome !== "succeeded" || record.cancelAttempted) {
    console.log(`CLIENT ${record.key} ${record.mode} job ${record.jobId ?? "unknown"}: ${record.outcome} after ${record.attempts} attempts${record.cancelAttempted ? " (cancel sent)" : ""}`);
  }
}
for (const violation of report.violations) console.log(`VIOLATION ${violation.rule}: ${violation.detail}`);
for (const broken of report.ledger) console.log(`LEDGER INVARIANT BROKEN (${broken.count}): ${broken.invariant}; sample ${JSON.stringify(broken.sample)}`);
console.log(JSON.stringify(report.summary));
process.exit(report.ok ? 0 : 1);

import { clientConfigSpec, commonConfigSpec } from "../common/common.config.ts";
import { integer, loadConfig, port } from "../common/config.loader.ts";

export const orchestratorConfigSpec = {
  ...commonConfigSpec,
  BILLING_URL: clientConfigSpec.BILLING_URL,
  SERVICE_CALL_TIMEOUT_MS: clientConfigSpec.SERVICE_CALL_TIMEOUT_MS,
  JOB_QUIET_MS_MAX: integer(
    "A queued or running job with no change for this long is reconciled (re-queued, or failed and refunded), in milliseconds; keep it below HOLD_TTL_SECONDS.",
    300_000,
    { min: 1000 },
  ),
  JOB_REQUEUES_MAX: integer("Re-queues of a quiet job before it is failed and its hold released.", 2, { min: 0, max: 100 }),
  RECONCILE_INTERVAL_MS: integer("How often the orchestrator looks for quiet jobs, in milliseconds.", 60_000, { min: 100 }),
  PORT: port("Orchestrator port (Connect, gRPC, gRPC-Web).", 8082),
} as const;

export type OrchestratorConfig = ReturnType<typeof loadOrchestratorConfig>;

export function loadOrchestratorConfig(environment: NodeJS.ProcessEnv = process.env) {
  return loadConfig(orchestratorConfigSpec, environment);
}

/** The reconciler's settings as the orchestrator takes them. */
export function reconcileOptions(config: Pick<OrchestratorConfig, "JOB_QUIET_MS_MAX" | "JOB_REQUEUES_MAX" | "RECONCILE_INTERVAL_MS">) {
  return { quietMsMax: config.JOB_QUIET_MS_MAX, requeuesMax: config.JOB_REQUEUES_MAX, intervalMs: config.RECONCILE_INTERVAL_MS };
}

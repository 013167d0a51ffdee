import { clientConfigSpec, commonConfigSpec } from "../common/common.config.ts";
import { loadConfig, port } from "../common/config.ts";

export const orchestratorConfigSpec = {
  ...commonConfigSpec,
  BILLING_URL: clientConfigSpec.BILLING_URL,
  PORT: port("Orchestrator port (Connect, gRPC, gRPC-Web, /metrics).", 8082),
} as const;

export type OrchestratorConfig = ReturnType<typeof loadOrchestratorConfig>;

export function loadOrchestratorConfig(environment: NodeJS.ProcessEnv = process.env) {
  return loadConfig(orchestratorConfigSpec, environment);
}

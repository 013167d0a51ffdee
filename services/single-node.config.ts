import { billingConfigSpec } from "./billing/billing.config.ts";
import { gatewayConfigSpec } from "./gateway/gateway.config.ts";
import { inferenceServiceConfigSpec } from "./inference/inference.config.ts";
import { orchestratorConfigSpec } from "./orchestrator/orchestrator.config.ts";

/** Every service's variables, for README's table and for single-node mode, which reads them all. */
export const configSpecs = {
  gateway: gatewayConfigSpec,
  billing: billingConfigSpec,
  orchestrator: orchestratorConfigSpec,
  inference: inferenceServiceConfigSpec,
} as const;

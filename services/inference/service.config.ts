import { commonConfigSpec } from "../common/common.config.ts";
import { loadConfig, port } from "../common/config.ts";
import { inferenceConfigSpec } from "./config.ts";

/** The inference process: the engine's variables plus the server's. */
export const inferenceServiceConfigSpec = {
  ...commonConfigSpec,
  PORT: port("Inference port (Connect, gRPC, gRPC-Web).", 8083),
  ...inferenceConfigSpec,
} as const;

export function loadInferenceServiceConfig(environment: NodeJS.ProcessEnv = process.env) {
  return loadConfig(inferenceServiceConfigSpec, environment);
}

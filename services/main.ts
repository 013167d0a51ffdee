// `npm start`: the whole mesh in one process on embedded defaults.
import { runMain } from "./common/runtime.ts";
import { ConfigError } from "./common/config.loader.ts";
import { createLogger } from "./common/logging.ts";
import { loadInferenceServiceConfig } from "./inference/inference.config.ts";
import { createSegmentationEngine, type SegmentationEngine } from "./inference/runtime/segmentation.engine.ts";

/**
 * The model's thread, started before the rest of the mesh's modules load: reading, verifying and
 * optimising the model is the longest step of a start, and the imports (over a second on a CPU)
 * then run beside it on the other core instead of before it. A configuration problem is left for
 * startSingleNode to report with every other one.
 */
function startEngineEarly(environment: NodeJS.ProcessEnv): Promise<SegmentationEngine> | undefined {
  try {
    const config = loadInferenceServiceConfig(environment);
    const engine = createSegmentationEngine(config, createLogger("cutline", config.LOG_LEVEL).child({ service: "inference" }));
    engine.catch(() => {}); // startSingleNode awaits it and reports its failure
    return engine;
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
}

await runMain("cutline", async () => {
  const engine = startEngineEarly(process.env);
  const { startSingleNode } = await import("./single-node.ts");
  const node = await startSingleNode(process.env, { engine });
  await node.ready;
  console.log(`gateway listening at ${node.url}`);
  console.log(`API key: ${node.apiKey}   (also in $CUTLINE_DATA_DIR/api-key; send it as X-Api-Key)`);
  console.log(`admin token: ${node.adminTokenFile ? `kept in ${node.adminTokenFile}` : "CUTLINE_ADMIN_TOKEN"}   (npm run -s admin -- <command>; see README)`);
  return node;
});

/**
 * What a single node (`npm start`) sets where its environment does not. Its one process answers
 * requests and runs the model on the same cores, so the model's threads run at niceness 9: the
 * request path (HTTP, the database, queues, decode, refine, encode) runs first when the cores are
 * short, and the model takes all the rest (bench:gateway at 32 concurrent: overhead p99 1.66–1.89 s
 * at niceness 0, 1.13–1.18 s at 9, throughput unchanged). The mesh's inference service keeps 0.
 */
export const SINGLE_NODE_DEFAULTS: Readonly<Record<string, string>> = { INFERENCE_MODEL_NICENESS: "9" };

export function withSingleNodeDefaults(environment: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...SINGLE_NODE_DEFAULTS, ...environment };
}

// The image fuzzer's server (scripts/fuzz-images.ts starts it as a child process): a single node
// on embedded defaults with one test account on the unlisted "unlimited" plan and enough
// credits that no plan limit or balance answers before the decoder does. Prints one JSON line
// {url, apiKey, metricsUrl, pid} once the model is ready; stops on SIGTERM or when its stdin closes.
import { Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { startSingleNode } from "../services/single-node.ts";

const ACCOUNT_ID = "fuzz";
// 100,000 credits (one grant's limit): a run of 10,000 images spends a few thousand.
const FUNDING_MILLICREDITS = 100_000_000n;

const node = await startSingleNode(process.env);
await node.ready;
const apiKey = await node.provisionAccount(ACCOUNT_ID, { planCode: "unlimited", grantTrial: false });
await node.billing.grant({
  accountId: ACCOUNT_ID,
  pool: Pool.API,
  kind: "top_up",
  amountMillicredits: FUNDING_MILLICREDITS,
  idempotencyKey: "fuzz-funding",
  description: "image fuzzer",
});
process.stdout.write(`${JSON.stringify({ url: node.url, apiKey, metricsUrl: node.metricsUrl, pid: process.pid })}\n`);

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  node.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
}
process.on("SIGTERM", stop);
// The fuzzer holds our stdin open; when it dies, however it dies, the pipe closes and we stop too.
process.stdin.on("close", stop);
process.stdin.on("end", stop);
process.stdin.resume();

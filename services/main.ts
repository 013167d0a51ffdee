// `npm start`: the whole mesh in one process on embedded defaults.
import { runMain } from "./common/runtime.ts";
import { startSingleNode } from "./single-node.ts";

await runMain("cutline", async () => {
  const node = await startSingleNode();
  await node.ready;
  console.log(`gateway listening at ${node.url}`);
  console.log(`API key: ${node.apiKey}   (also in $CUTLINE_DATA_DIR/api-key; send it as X-Api-Key)`);
  console.log(`admin token: ${node.adminTokenFile ? `kept in ${node.adminTokenFile}` : "CUTLINE_ADMIN_TOKEN"}   (npm run -s admin -- <command>; see README)`);
  return node;
});

// `npm run mesh`: the four services as separate processes against DATABASE_URL and NATS_URL.
import { startMeshProcesses, SERVICES, type ServiceName } from "./mesh-processes.ts";

if (!process.env.DATABASE_URL || !process.env.NATS_URL) {
  console.error("npm run mesh needs DATABASE_URL and NATS_URL (e.g. postgres://postgres@127.0.0.1:5432/test and nats://127.0.0.1:4222); `npm start` runs without them");
  process.exit(1);
}
const basePort = Number(process.env.MESH_BASE_PORT ?? 8080);
const ports = { gateway: basePort, billing: basePort + 1, orchestrator: basePort + 2, inference: basePort + 3 } satisfies Record<ServiceName, number>;
const mesh = startMeshProcesses({ env: process.env, ports, output: (service, line) => console.log(`${service.padEnd(12)} ${line}`) });
console.log(`mesh starting: ${SERVICES.map((name) => `${name} ${mesh.urls[name]}`).join(", ")}`);
// A throw-away token for this run, shown so grpcurl or curl can call the internal services
// (header cutline-service-token); a token from the environment is never printed.
if (!process.env.CUTLINE_SERVICE_TOKEN) console.log(`CUTLINE_SERVICE_TOKEN generated for this run: ${mesh.serviceToken}`);
for (const name of SERVICES) {
  mesh.children[name].once("exit", (code) => {
    console.error(`${name} exited with ${code}; stopping the mesh`);
    void mesh.stop().then(() => process.exit(code === 0 ? 0 : 1));
  });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void mesh.stop().then(() => process.exit(0)));
}

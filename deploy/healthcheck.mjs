#!/usr/bin/env node
// Container health check without grpc_health_probe: one Connect (JSON over HTTP/1.1) call to the
// standard gRPC health service on this container's own port. Exit 0 when SERVING, 1 otherwise.
// Usage: node deploy/healthcheck.mjs [port] [service]  (port defaults to $PORT, service to "" = whole server)
const port = process.argv[2] ?? process.env.PORT;
const service = process.argv[3] ?? "";
if (!port) {
  console.error("healthcheck: no port (pass one or set PORT)");
  process.exit(1);
}
try {
  const response = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1" },
    body: JSON.stringify({ service }),
    signal: AbortSignal.timeout(3000),
  });
  const body = await response.json().catch(() => ({}));
  if (response.ok && body.status === "SERVING") process.exit(0);
  console.error(`healthcheck: HTTP ${response.status} ${JSON.stringify(body)}`);
} catch (error) {
  console.error(`healthcheck: ${error instanceof Error ? error.message : String(error)}`);
}
process.exit(1);

// Prints README's configuration table from the services' config specs, so the two cannot drift:
// `npx tsx scripts/config-table.ts`. test/readme.spec.ts checks README lists every variable.
import type { Variable } from "../services/common/config.loader.ts";
import { configSpecs } from "../services/single-node.config.ts";

const rows = new Map<string, { variable: Variable<unknown>; services: string[] }>();
for (const [service, spec] of Object.entries(configSpecs)) {
  for (const [name, variable] of Object.entries(spec as Record<string, Variable<unknown>>)) {
    const row = rows.get(name) ?? { variable, services: [] };
    row.services.push(service);
    rows.set(name, row);
  }
}

const cell = (value: unknown) => (value === undefined ? "unset" : `\`${Array.isArray(value) ? value.join(",") : String(value)}\``);
console.log("| variable | default | used by | meaning |");
console.log("|---|---|---|---|");
for (const [name, { variable, services }] of rows) {
  const usedBy = services.length === Object.keys(configSpecs).length ? "all" : services.join(", ");
  console.log(`| \`${name}\` | ${cell(variable.defaultValue)} | ${usedBy} | ${variable.description} |`);
}

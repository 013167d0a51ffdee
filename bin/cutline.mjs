#!/usr/bin/env node
// `cutline` (npx cutline --help): the TypeScript client in cli/, run through tsx in this process,
// so a signal sent to this process reaches the client itself.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2), process.env);

// The photos the inference bench and eval run on: every `<name>.jpg|png` with a `<name>.mask.png`
// beside it under a directory (recursively), and `--images N` to take N of them spread evenly
// over the sorted list (every folder represented) for a quick run.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export interface EvalPair {
  image: string;
  mask: string;
}

export const DEV_EVAL_DIRECTORY = join(import.meta.dirname, "..", "..", "..", "shared", "eval", "dev");

export function* evalPairs(folder: string): Generator<EvalPair> {
  for (const entry of readdirSync(folder).sort()) {
    const path = join(folder, entry);
    if (statSync(path).isDirectory()) {
      yield* evalPairs(path);
      continue;
    }
    const match = /^(.*)\.(jpg|png)$/i.exec(entry);
    if (match === null || entry.endsWith(".mask.png")) continue;
    const mask = join(folder, `${match[1]}.mask.png`);
    if (existsSync(mask)) yield { image: path, mask };
  }
}

/** `count` items spread evenly over `items` (all of them when count is undefined or not smaller). */
export function spread<T>(items: readonly T[], count: number | undefined): T[] {
  if (count === undefined || count >= items.length) return [...items];
  return Array.from({ length: count }, (_, index) => items[Math.floor((index * items.length) / count)]!);
}

/** `--images N` and the first other argument (a directory), from argv. */
export function parseEvalArguments(argv: readonly string[]): { directory: string | undefined; imagesMax: number | undefined } {
  let imagesMax: number | undefined;
  let directory: string | undefined;
  for (let index = 0; index < argv.length; index++) {
    if (argv[index] === "--images") {
      imagesMax = Number(argv[++index]);
      if (!Number.isInteger(imagesMax) || imagesMax < 1) throw new Error(`--images must be a whole number ≥ 1, got ${argv[index]}`);
    } else if (directory === undefined) directory = argv[index];
  }
  return { directory, imagesMax };
}

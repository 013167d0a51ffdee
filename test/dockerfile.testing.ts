// Reads Dockerfiles without a Docker engine: their stages (comments dropped, continuation lines
// joined) and what a target is built from. For the specs of the images' rules.
import assert from "node:assert/strict";

export interface Stage {
  name: string;
  base: string;
  instructions: string[];
}
/** The stages of a Dockerfile, comment lines dropped and continuation lines joined. */
export function stagesOf(dockerfile: string): Stage[] {
  const lines = dockerfile
    .replace(/^\s*#.*\n/gm, "")
    .replace(/\\\n/g, " ")
    .split("\n")
    .filter((line) => line.trim() !== "");
  const stages: Stage[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ name: from[2] ?? String(stages.length), base: from[1]!, instructions: [] });
    else stages.at(-1)?.instructions.push(line.trim());
  }
  return stages;
}
/** A target and every stage it is built from: its FROM chain and the stages it copies from. */
export function stagesBehind(stages: Stage[], target: string): Stage[] {
  const byName = new Map(stages.map((stage) => [stage.name, stage]));
  const seen = new Map<string, Stage>();
  const visit = (name: string) => {
    const stage = byName.get(name);
    if (!stage || seen.has(name)) return;
    seen.set(name, stage);
    visit(stage.base);
    for (const instruction of stage.instructions) {
      const from = /^COPY\s+.*--from=(\S+)/i.exec(instruction);
      if (from) visit(from[1]!);
    }
  };
  visit(target);
  assert.ok(seen.size > 0, `stage ${target}`);
  return [...seen.values()];
}
export const runs = (stages: Stage[]) => stages.flatMap((stage) => stage.instructions.filter((instruction) => /^RUN\s/i.test(instruction)));

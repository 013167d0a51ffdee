// Results are written whole or not at all: to a temporary name in the same folder, then renamed
// (atomic on one file system). So an output that exists is complete, and a run killed mid-write
// leaves only a temporary file, which the next run in that folder removes, and redoes the file.
import { existsSync } from "node:fs";
import { readdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const TEMPORARY = /^\..+\.(\d+)\.partial$/;

const temporaryNameOf = (target: string) => join(dirname(target), `.${basename(target)}.${process.pid}.partial`);

export async function writeAtomically(target: string, bytes: Uint8Array): Promise<void> {
  const temporary = temporaryNameOf(target);
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** An output that exists is complete (see writeAtomically). */
export const isDone = (target: string): boolean => existsSync(target);

/** Temporary files of runs that are gone (killed mid-write); those of a run still going are kept. */
export async function removeStaleTemporaries(directory: string): Promise<number> {
  let removed = 0;
  for (const name of await readdir(directory)) {
    const match = TEMPORARY.exec(name);
    if (!match || isRunning(Number(match[1]))) continue;
    await rm(join(directory, name), { force: true });
    removed += 1;
  }
  return removed;
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

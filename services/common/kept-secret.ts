// A secret the operator may set, else one generated at first start and kept in the data directory
// (mode 0600), so a single node keeps working across restarts without any set-up. Used for the
// result-URL signing key and the admin token.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Random bytes of a generated secret: 32 bytes are 256 bits, 64 hex characters. */
export const KEPT_SECRET_BYTES = 32;

/**
 * The secret in `$dataDir/<fileName>`, created (64 hex characters, mode 0600) when missing. Two
 * processes starting at once agree: the file is created exclusively, and the loser reads it.
 */
export function keptSecretOf(dataDir: string, fileName: string): { secret: string; file: string; created: boolean } {
  const file = join(dataDir, fileName);
  const secret = randomBytes(KEPT_SECRET_BYTES).toString("hex");
  mkdirSync(dataDir, { recursive: true });
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const kept = readFileSync(file, "utf8").trim();
    if (kept === "") throw new Error(`${file} is empty: delete it to have a new secret generated, or set the variable`);
    return { secret: kept, file, created: false };
  }
  // The mode given to writeFileSync is filtered by the umask; this one is not.
  chmodSync(file, 0o600);
  return { secret, file, created: true };
}

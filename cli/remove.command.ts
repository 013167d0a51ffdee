// `cutline remove <files or folders...> --out <dir>`: each image through ImageService.RemoveBackground,
// a bounded number at a time, its result written to <out>/<name>.<format> whole or not at all.
// Resumable: an output that exists is done and skipped. Each call's idempotency key is a hash of
// the image's bytes and the options, so the file a crash cut off is replayed by the server on the
// next run (the first job's result, charged once), never charged twice; a file whose job the
// server failed on its side is retried under that job's follow-up key (follow-up-keys.ts).
import { create } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import cliProgress from "cli-progress";
import { creditsNumber, formatCredits } from "../services/common/credits.ts";
import { ImageService } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";
import { ImageOptionsSchema, OutputFormat, OutputSize } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { choice, colourOf, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, flag, requiredText, text, wholeNumber, type Command, type CommandContext } from "./command.ts";
import { CallGate } from "./call-gate.ts";
import { CliError, describeError, withRetries } from "./connection.ts";
import { failedJobOf, followUpKeyOf, worthAFollowUp } from "./follow-up-keys.ts";
import { collectInputs, outputCollisions, outputNameOf, shown, type CliFormat, type InputFile } from "./image-files.ts";
import { isDone, removeStaleTemporaries, writeAtomically } from "./output-files.ts";

/** Files sent at once unless --concurrency says otherwise; a plan that allows fewer refuses the rest, which wait and retry. */
export const CONCURRENCY_DEFAULT = 2;
/** Most files --concurrency may send at once. */
export const CONCURRENCY_MAX = 32;
/** How long one file's call may take, retries' waits aside, in milliseconds. */
const CALL_TIMEOUT_MS = 300_000;
/** Bumped when what the key covers changes, so old keys never match new requests. */
const IDEMPOTENCY_KEY_VERSION = "v1";

const FORMATS = ["png", "webp", "jpg", "mask"] as const;
const SIZES = ["preview", "full", "hd"] as const;
const FORMAT_OF: Record<CliFormat, OutputFormat> = { png: OutputFormat.PNG, webp: OutputFormat.WEBP, jpg: OutputFormat.JPEG, mask: OutputFormat.MASK };
const SIZE_OF: Record<(typeof SIZES)[number], OutputSize> = { preview: OutputSize.PREVIEW, full: OutputSize.FULL, hd: OutputSize.HD };

export interface Summary {
  processed: number;
  skipped: number;
  failed: number;
  creditsCharged: number;
}

interface Failure {
  path: string;
  reason: string;
  message: string;
}

/** Of the bytes and the options: the same file asked the same way is the same request. */
export function idempotencyKeyOf(image: Uint8Array, options: { format: CliFormat; size: string; backgroundColor: string }): string {
  const canonical = JSON.stringify([options.format, options.size, options.backgroundColor]);
  const hash = createHash("sha256").update(`${image.byteLength}:`).update(image).update(canonical).digest("hex");
  return `cutline-cli-remove-${IDEMPOTENCY_KEY_VERSION}-${hash}`;
}

/**
 * `send` under the file's key; when the answer is a server-side failure of the job under it (which
 * the same key would replay forever), again under that failure's follow-up key, FOLLOW_UP_RETRIES_MAX
 * times at most. Each failed job charged nothing, and each key is derived from the failed job alone,
 * so a rerun replays the same jobs and the file is charged at most once.
 */
export async function sendWithFollowUps<T>(baseKey: string, send: (idempotencyKey: string) => Promise<T>): Promise<T> {
  let key = baseKey;
  for (let followUps = 0; ; followUps += 1) {
    try {
      return await send(key);
    } catch (error) {
      const failed = failedJobOf(error);
      if (!failed || !worthAFollowUp(failed, followUps)) throw error;
      key = followUpKeyOf(baseKey, failed.jobId);
    }
  }
}

export const removeCommand: Command = {
  summary: "remove <files or folders...> --out <dir>   cut out every image, resumably",
  help: `Usage: cutline remove <files or folders...> --out <dir> [options]

Writes <dir>/<name without extension>.<format> for each image (the mask: <name>.mask.png).
Folders are walked recursively; their files are sniffed by their first bytes (JPEG, PNG, WebP,
GIF, BMP, TIFF, HEIC), whatever their extension, and other files are left alone. Files named
directly are always sent. Outputs that already exist are skipped, so a rerun resumes; each call's
idempotency key is derived from the file's content and the options, so a file that a killed run
had already sent is not charged again. When the server fails a file's job on its own side (internal,
job_stuck, job_timeout, queue_full, model_unavailable, hold_expired: nothing charged), the file is
retried once under the key <key>:after:<failed job id>, which a rerun derives again (never two charges).

Options:
  --out <dir>          where results go (created if missing)                     required
  --format <f>         png | webp | jpg | mask                                   default png
  --size <s>           preview | full | hd                                       default full
  --bg-color <#hex>    a solid background (#rrggbb) instead of transparency
  --concurrency <n>    files sent at once, 1 to ${CONCURRENCY_MAX}                             default ${CONCURRENCY_DEFAULT}
  --json               print {"processed","skipped","failed","creditsCharged"} as the last line
  --grpc               talk gRPC instead of Connect

Rate-limit answers are waited out and retried: a refusal for running too many at once lowers
the concurrency for the rest of the run, and a rate limit's retry-after pauses every call.
Ctrl-C stops after the files in flight and prints the summary (a second Ctrl-C quits at once).
Exit code 0 when every file succeeded or was skipped, 1 when any failed (each listed at the
end), 2 on a usage error, 130 when interrupted.`,
  options: { out: text, format: text, size: text, quality: text, "bg-color": text, concurrency: text, json: flag },
  async run(context) {
    if (context.positionals.length === 0) throw new CliError("name at least one file or folder", 2);
    if (context.values.quality !== undefined) {
      throw new CliError("--quality applies to `cutline video`: the image API has no quality option (ImageOptions)", 2);
    }
    const outDirectory = requiredText(context.values, "out");
    const format = choice(context.values, "format", FORMATS, "png");
    const size = choice(context.values, "size", SIZES, "full");
    const backgroundColor = colourOf(context.values, "bg-color") ?? "";
    const concurrency = wholeNumber(context.values, "concurrency", { min: 1, max: CONCURRENCY_MAX, fallback: CONCURRENCY_DEFAULT });
    const collected = await collectInputs(context.positionals, outDirectory);
    const collisions = outputCollisions(collected.files, format);
    if (collisions.length > 0) throw new CliError(`two inputs would write one output: ${collisions.join("; ")}`, 2);
    const options = create(ImageOptionsSchema, { format: FORMAT_OF[format], size: SIZE_OF[size], backgroundColor });
    const images = context.connection().client(ImageService);
    await mkdir(outDirectory, { recursive: true });
    await removeStaleTemporaries(outDirectory);
    if (collected.ignored > 0) context.warn(`left alone ${collected.ignored} file(s) in the folders that are not images`);

    const run = new RemoveRun(context, { outDirectory, format, concurrency });
    const gate = new CallGate(concurrency);
    for (const missing of collected.missing) run.fail({ path: missing.path, reason: "not_found", message: missing.message });
    await run.all(collected.files, async (file, target) => {
      const image = new Uint8Array(await readFile(file.path));
      const baseKey = idempotencyKeyOf(image, { format, size, backgroundColor });
      const send = (idempotencyKey: string) =>
        withRetries(() => gate.run(() => images.removeBackground({ image, options, idempotencyKey }, { timeoutMs: CALL_TIMEOUT_MS })), {
          onWait: (waitMs, error) => {
            const { reason } = describeError(error);
            if (reason === "concurrency_limited") gate.fewerAtOnce();
            else gate.pause(waitMs);
            run.waited(waitMs, reason);
          },
        });
      const answer = await sendWithFollowUps(baseKey, send);
      await writeAtomically(target, answer.image);
      return { jobId: answer.jobId, chargedMillicredits: answer.creditsChargedMillicredits };
    });
    return run.finish();
  },
};

/** One run's bookkeeping: the progress bar, the counts, the failures and the credits charged. */
class RemoveRun {
  readonly #summary = { processed: 0, skipped: 0, failed: 0, chargedMillicredits: 0n };
  readonly #failures: Failure[] = [];
  /** Jobs counted: two identical files replay one job, charged once. */
  readonly #jobsCounted = new Set<string>();
  #bar: cliProgress.SingleBar | undefined;
  /** Set by Ctrl-C: files not started are left for the next run. */
  interrupted = false;

  constructor(
    readonly context: CommandContext,
    readonly settings: { outDirectory: string; format: CliFormat; concurrency: number },
  ) {}

  fail(failure: Failure): void {
    this.#summary.failed += 1;
    this.#failures.push(failure);
  }

  readonly #waits = { count: 0, totalMs: 0 };

  /** A call told to wait (a plan's rate or concurrency limit): shown on the bar, summed at the end. */
  waited(waitMs: number, reason: string): void {
    this.#waits.count += 1;
    this.#waits.totalMs += waitMs;
    this.#bar?.update({ status: `waiting ${(waitMs / 1000).toFixed(1)} s (${reason})` });
  }

  /** Every file through `work`, `concurrency` at a time; an output already there is skipped. */
  async all(files: InputFile[], work: (file: InputFile, target: string) => Promise<{ jobId: string; chargedMillicredits: bigint }>): Promise<void> {
    this.#bar = new cliProgress.SingleBar(
      {
        format: " {bar} {percentage}% | {value}/{total} files | ETA {eta_formatted} | {credits} credits | {status}",
        stream: process.stderr,
        etaBuffer: 20,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(files.length, 0, { credits: "0", status: "" });
    let next = 0;
    // Ctrl-C: no new file starts, the ones in flight end and are written, the summary is printed
    // (the rest is done by the next run); a second Ctrl-C quits at once.
    const interrupt = () => {
      this.interrupted = true;
      this.#bar?.update({ status: "stopping after the files in flight (Ctrl-C again to quit now)" });
      process.once("SIGINT", () => process.exit(EXIT_INTERRUPTED));
    };
    process.once("SIGINT", interrupt);
    const worker = async () => {
      while (next < files.length && !this.interrupted) {
        const file = files[next++]!;
        const target = join(this.settings.outDirectory, outputNameOf(file.path, this.settings.format));
        if (isDone(target)) this.#summary.skipped += 1;
        else await this.#one(file, target, work);
        this.#bar!.increment(1, { credits: formatCredits(this.#summary.chargedMillicredits), status: "" });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.settings.concurrency, files.length) }, worker));
    process.removeListener("SIGINT", interrupt);
    this.#bar.stop();
  }

  async #one(file: InputFile, target: string, work: (file: InputFile, target: string) => Promise<{ jobId: string; chargedMillicredits: bigint }>): Promise<void> {
    try {
      const done = await work(file, target);
      this.#summary.processed += 1;
      if (!this.#jobsCounted.has(done.jobId)) {
        this.#jobsCounted.add(done.jobId);
        this.#summary.chargedMillicredits += done.chargedMillicredits;
      }
    } catch (error) {
      this.fail({ path: file.path, ...describeError(error) });
    }
  }

  finish(): number {
    const { processed, skipped, failed, chargedMillicredits } = this.#summary;
    if (this.#waits.count > 0) {
      this.context.warn(`waited ${this.#waits.count} time(s) for the plan's limits, ${(this.#waits.totalMs / 1000).toFixed(1)} s in all (retried each call)`);
    }
    for (const failure of this.#failures) this.context.warn(`failed: ${shown(failure.path)}: ${failure.message} (${failure.reason})`);
    const summary: Summary = { processed, skipped, failed, creditsCharged: creditsNumber(chargedMillicredits) };
    if (this.context.json) this.context.print(JSON.stringify(summary));
    else this.context.print(`${processed} processed, ${skipped} skipped (already done), ${failed} failed; ${formatCredits(chargedMillicredits)} credits charged`);
    if (this.interrupted) this.context.warn("interrupted: run the same command again to do the rest");
    return this.interrupted ? EXIT_INTERRUPTED : failed > 0 ? EXIT_FAILED : EXIT_OK;
  }
}

// One end-to-end scenario, run against single-node mode and against the mesh: every call goes
// in through the gateway and crosses billing, the orchestrator, the work queue and inference.
import { createClient, Code, ConnectError, type Transport } from "@connectrpc/connect";
import assert from "node:assert/strict";
import sharp from "sharp";
import { ImageService } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";
import { JobService, JobStatus } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { REASON_HEADER } from "../services/common/errors.ts";

/** A 320×240 photo-like test image: a shaded ball in front of a gradient wall. */
export async function testPhoto(): Promise<Uint8Array> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
    <defs><linearGradient id="wall" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#9bb7d4"/><stop offset="1" stop-color="#e8eef5"/></linearGradient>
    <radialGradient id="ball" cx="0.35" cy="0.35" r="0.7"><stop offset="0" stop-color="#ffb347"/><stop offset="1" stop-color="#b34700"/></radialGradient></defs>
    <rect width="320" height="240" fill="url(#wall)"/><circle cx="160" cy="130" r="70" fill="url(#ball)"/></svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toBuffer());
}

const withKey = (apiKey: string) => ({ headers: { "x-api-key": apiKey } });

async function expectConnectError(call: Promise<unknown>, code: Code, reason: string): Promise<ConnectError> {
  const error = await call.then(
    () => assert.fail(`expected ${Code[code]} (${reason})`),
    (caught: unknown) => ConnectError.from(caught),
  );
  assert.equal(error.code, code, error.message);
  assert.equal(error.metadata.get(REASON_HEADER), reason, error.message);
  return error;
}

/**
 * Runs the scenario against a gateway. The account starts with the 10-credit sign-up trial and
 * each 320×240 image here costs 0.5 credit (the ≤ 0.25 MP tier; never under 0.5), so the balances are exact.
 */
export async function runEndToEndScenario(gatewayUrl: string, apiKey: string, transport: Transport): Promise<void> {
  const images = createClient(ImageService, transport);
  const jobs = createClient(JobService, transport);
  const photo = await testPhoto();

  // 1. Synchronous: the cut-out comes back with its job id and the credits charged and left.
  const first = await images.removeBackground({ image: photo, idempotencyKey: "e2e-first" }, withKey(apiKey));
  assert.equal(first.contentType, "image/png");
  const metadata = await sharp(first.image).metadata();
  assert.deepEqual([metadata.format, metadata.width, metadata.height, metadata.hasAlpha], ["png", 320, 240, true]);
  assert.deepEqual([first.width, first.height], [320, 240], "the response names the result's size");
  const { data: alpha } = await sharp(first.image).extractChannel(3).raw().toBuffer({ resolveWithObject: true });
  const transparent = alpha.filter((value) => value < 16).length / alpha.length;
  const opaque = alpha.filter((value) => value > 240).length / alpha.length;
  assert.ok(transparent > 0.2 && opaque > 0.05, `a real cut-out has both background and subject (transparent ${transparent}, opaque ${opaque})`);
  assert.match(first.jobId, /^[0-9a-f-]{36}$/);
  assert.equal(first.creditsChargedMillicredits, 500n);
  assert.equal(first.creditsRemainingMillicredits, 9500n);

  // 2. A retry with the same idempotency key is the same job and is not charged again.
  const replay = await images.removeBackground({ image: photo, idempotencyKey: "e2e-first" }, withKey(apiKey));
  assert.equal(replay.jobId, first.jobId);
  assert.equal(replay.creditsRemainingMillicredits, 9500n);

  // 3. Bad input is rejected before any hold, naming the problem; no credit moves.
  await expectConnectError(
    images.removeBackground({ image: new TextEncoder().encode("%PDF-1.7 not an image") }, withKey(apiKey)),
    Code.InvalidArgument,
    "unsupported_format",
  );
  await expectConnectError(images.removeBackground({ image: photo }), Code.Unauthenticated, "missing_api_key");
  await expectConnectError(images.removeBackground({ image: photo }, withKey("cl_wrong")), Code.Unauthenticated, "invalid_api_key");

  // 4. Plain HTTP, as remove.bg clients send it: multipart in, image out, credits in headers.
  const form = new FormData();
  form.append("image_file", new Blob([photo], { type: "image/jpeg" }), "photo.jpg");
  form.append("format", "jpg");
  form.append("bg_color", "00ff00");
  const rest = await fetch(`${gatewayUrl}/v1/matting`, { method: "POST", headers: { "x-api-key": apiKey }, body: form });
  assert.equal(rest.status, 200, await rest.clone().text());
  assert.equal(rest.headers.get("content-type"), "image/jpeg");
  assert.equal(rest.headers.get("x-credits-charged"), "0.5");
  assert.equal(rest.headers.get("x-credits-remaining"), "9", "the rejected calls above charged nothing");
  assert.ok(rest.headers.get("x-job-id"));
  const restImage = await sharp(Buffer.from(await rest.arrayBuffer())).metadata();
  assert.deepEqual([restImage.format, restImage.width, restImage.height], ["jpeg", 320, 240]);
  const badForm = new FormData();
  badForm.append("image_file", new Blob([new Uint8Array(16)]), "zeros.bin");
  const badRest = await fetch(`${gatewayUrl}/v1/matting`, { method: "POST", headers: { "x-api-key": apiKey }, body: badForm });
  assert.equal(badRest.status, 400);
  assert.equal(((await badRest.json()) as { errors: { code: string }[] }).errors[0]?.code, "unsupported_format");

  // 5. Asynchronous: submit returns at once; the watch stream ends at a terminal state.
  const submitted = await jobs.submit({ image: photo, options: { format: OutputFormat.MASK } }, withKey(apiKey));
  assert.ok(submitted.job && [JobStatus.QUEUED, JobStatus.RUNNING].includes(submitted.job.status));
  const statuses: JobStatus[] = [];
  const progress: number[] = [];
  for await (const update of jobs.watchJob({ jobId: submitted.job.id }, withKey(apiKey))) {
    statuses.push(update.job!.status);
    progress.push(update.job!.progress);
  }
  assert.equal(statuses.at(-1), JobStatus.SUCCEEDED, `statuses seen: ${statuses.join(",")}`);
  // Progress only rises, from the worker's stage reports, and is 1 once succeeded.
  assert.ok(progress.every((value, index) => index === 0 || value >= progress[index - 1]!), `progress seen: ${progress.join(",")}`);
  assert.equal(progress.at(-1), 1);
  // The newest of the account's jobs, listed first.
  assert.equal((await jobs.listJobs({ pageSize: 1 }, withKey(apiKey))).jobs[0]?.id, submitted.job.id);
  const done = await jobs.getJob({ jobId: submitted.job.id, includeResult: true }, withKey(apiKey));
  assert.equal(done.job?.creditsChargedMillicredits, 500n);
  const mask = await sharp(done.result).metadata();
  assert.deepEqual([mask.width, mask.height, mask.channels], [320, 240, 1]);
  // Another account's key, or no key, cannot see it.
  await expectConnectError(jobs.getJob({ jobId: submitted.job.id }), Code.Unauthenticated, "missing_api_key");
  await expectConnectError(jobs.cancelJob({ jobId: submitted.job.id }, withKey(apiKey)), Code.FailedPrecondition, "job_finished");
}

// The web app in a real headless Chromium (playwright-core, the distribution's browser: nothing is
// downloaded) against a real single node (PGlite, in-process adapters, the real model): sign in
// with an API key, upload three images and watch their progress, compare before and after, download
// a PNG, a mask and a zip of all, see the balance fall by exactly what the jobs were charged, create
// a key (shown once, usable) and revoke it (refused from then on), and an account without credits
// told so with the top-up link. No console error on any page. Screenshots of each page go to
// test-artifacts/web/ (git-ignored).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { unzipSync } from "fflate";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import sharp, { type Sharp } from "sharp";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";

const root = join(import.meta.dirname, "..");
const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = join(root, "test-artifacts", "web");
/** How long one image may take from upload to result on a CPU-only runner, in milliseconds. */
const IMAGE_DONE_TIMEOUT_MS = 120_000;
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
/** The node's UPLOAD_BYTES_MAX here (256 KiB), so one noisy image is too large. */
const UPLOAD_BYTES_MAX = 262_144;

const skip = existsSync(CHROMIUM_PATH) ? false : `no Chromium at ${CHROMIUM_PATH} (install the distribution's package, e.g. apt-get install chromium, or set CHROMIUM_PATH)`;

/** Three synthetic photos: a subject on a plain background each, in three formats. */
async function syntheticImages(directory: string): Promise<string[]> {
  const scenes = [
    { name: "orange-disc.png", background: "#3366cc", shape: '<circle cx="160" cy="120" r="70" fill="#ffaa00"/>', encode: (image: Sharp) => image.png() },
    { name: "green-tile.jpg", background: "#9a9a9a", shape: '<rect x="90" y="60" width="140" height="120" rx="18" fill="#1f9d55"/>', encode: (image: Sharp) => image.jpeg({ quality: 92 }) },
    { name: "red-star.webp", background: "#f2efe6", shape: '<polygon points="160,40 184,105 252,105 197,145 218,210 160,170 102,210 123,145 68,105 136,105" fill="#d62828"/>', encode: (image: Sharp) => image.webp({ quality: 92 }) },
  ];
  const files: string[] = [];
  for (const scene of scenes) {
    const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">${scene.shape}</svg>`);
    const image = sharp({ create: { width: 320, height: 240, channels: 3, background: scene.background } }).composite([{ input: svg }]);
    const file = join(directory, scene.name);
    writeFileSync(file, await scene.encode(image).toBuffer());
    files.push(file);
  }
  return files;
}

/** The credits figure in a text such as "9.25 credits". */
function creditsIn(text: string | null): number {
  const match = /(-?[\d.,]+)\s*credits/.exec(text ?? "");
  assert.ok(match, `no credits figure in ${JSON.stringify(text)}`);
  return Number(match[1]!.replace(/,/g, ""));
}

describe("web app in headless Chromium against a single node", { skip }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-web-node-"));
  const imagesDir = mkdtempSync(join(tmpdir(), "cutline-web-images-"));
  let node: SingleNode;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let apiKey: string;
  let images: string[];
  const consoleErrors: string[] = [];

  const shoot = async (name: string) => {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };
  const balanceOverRest = async (key: string) => {
    const response = await fetch(`${node.url}/v1/credit/balance`, { headers: { "x-api-key": key } });
    assert.equal(response.status, 200, await response.clone().text());
    return ((await response.json()) as { available_credits: number }).available_credits;
  };
  const goTo = async (label: string, heading: string) => {
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: label }).click();
    await page.getByRole("heading", { level: 1, name: heading }).waitFor();
  };
  const signIn = async (key: string) => {
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Remove background" }).waitFor();
  };

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // `npm ci` builds the app (prepare); a checkout that skipped it is built here.
    if (!existsSync(join(root, "web", "dist", "index.html"))) {
      const built = spawnSync("npm", ["run", "-s", "build:web"], { cwd: root, encoding: "utf8" });
      assert.equal(built.status, 0, `npm run build:web failed:\n${built.stdout}\n${built.stderr}`);
    }
    images = await syntheticImages(imagesDir);
    node = await startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1", UPLOAD_BYTES_MAX: String(UPLOAD_BYTES_MAX) });
    await node.ready;
    apiKey = await node.provisionAccount("web-user");
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
    page = await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(`${page.url()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => consoleErrors.push(`${page.url()}: uncaught ${error.message}`));
  });

  after(async () => {
    await browser?.close();
    await node?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(imagesDir, { recursive: true, force: true });
  });

  it("signs in with an API key kept in session storage; a wrong key is told so", async () => {
    await page.goto(node.url);
    await page.getByRole("heading", { level: 1, name: "Sign in to Cutline" }).waitFor();
    await shoot("01-sign-in");
    await page.getByLabel("API key").fill("cl_not_a_key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "The API key is unknown or revoked" }).waitFor();
    await signIn(apiKey);
    assert.equal(await page.evaluate("sessionStorage.getItem('cutline.apiKey')"), apiKey);
    // A reload keeps the session; the app is served on page paths too.
    await page.goto(`${node.url}/usage`);
    await page.getByRole("heading", { level: 1, name: "Usage" }).waitFor();
    await goTo("Remove background", "Remove background");
  });

  it("uploads three images, streams their progress, compares, downloads PNG, mask and a zip; the balance falls by what was charged", async () => {
    const badge = page.getByTestId("balance-badge");
    await badge.filter({ hasText: "credits" }).waitFor();
    const before = creditsIn(await badge.textContent());
    assert.equal(before, await balanceOverRest(apiKey));
    // Every phase each card passes through, as the page shows it (WatchJob's changes).
    // (A string: this file is checked without the DOM's types.)
    await page.evaluate(`{
      const seen = (window.phasesSeen = []);
      new MutationObserver((records) => {
        for (const record of records) {
          const card = record.target.closest?.(".upload-card") ?? record.target.querySelector?.(".upload-card");
          if (card) seen.push(card.getAttribute("aria-label") + ":" + card.getAttribute("data-phase"));
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-phase", "value"] });
    }`);
    await page.getByTestId("image-input").setInputFiles(images);
    const cards = page.locator(".upload-card");
    await assert.doesNotReject(cards.nth(2).waitFor());
    assert.equal(await cards.count(), 3);
    for (const name of ["orange-disc.png", "green-tile.jpg", "red-star.webp"]) {
      await page.locator(`.upload-card[aria-label="${name}"][data-phase="succeeded"] .compare img`).first().waitFor({ timeout: IMAGE_DONE_TIMEOUT_MS });
    }
    const phases = (await page.evaluate("window.phasesSeen")) as string[];
    for (const name of ["orange-disc.png", "green-tile.jpg", "red-star.webp"]) {
      const mine = [...new Set(phases.filter((entry) => entry.startsWith(`${name}:`)).map((entry) => entry.slice(name.length + 1)))];
      assert.ok(mine.includes("uploading") && mine.includes("succeeded"), `${name} went through ${mine.join(" → ")}`);
      assert.ok(mine.some((phase) => phase === "queued" || phase === "running"), `${name} showed the job's progress before its result: ${mine.join(" → ")}`);
    }
    await page.getByTestId("batch-summary").filter({ hasText: "3 of 3 done" }).waitFor();
    const charged = creditsIn(await page.getByTestId("batch-summary").textContent());
    assert.ok(charged > 0, "the jobs were charged");
    await badge.filter({ hasText: `${Number((before - charged).toFixed(3))} credits` }).waitFor();
    assert.equal(Math.round((before - (await balanceOverRest(apiKey))) * 1000), Math.round(charged * 1000), "the balance fell by exactly the credits charged");

    // Before/after: the cut-out has transparency; the slider moves with the keyboard.
    const first = page.locator('.upload-card[aria-label="orange-disc.png"]');
    const slider = first.getByRole("slider");
    await slider.focus();
    for (let press = 0; press < 5; press += 1) await page.keyboard.press("ArrowRight");
    assert.equal(await slider.inputValue(), "55");
    assert.match((await first.locator(".compare-before").getAttribute("style")) ?? "", /inset\(0(px)? 45% 0(px)? 0(px)?\)/);
    await shoot("02-results");
    await page.getByRole("button", { name: "Colour #d9e7ff" }).click();
    assert.match((await first.locator(".compare-after").getAttribute("style")) ?? "", /background-color: rgb\(217, 231, 255\)/);
    await shoot("03-results-on-colour");

    const download = async (card: typeof first, label: string) => {
      const [file] = await Promise.all([page.waitForEvent("download"), card.getByRole("button", { name: label, exact: true }).click()]);
      return { name: file.suggestedFilename(), bytes: readFileSync((await file.path())!) };
    };
    await page.getByRole("button", { name: "Transparent" }).click();
    const png = await download(first, "PNG");
    assert.equal(png.name, "orange-disc.png");
    const pixels = await sharp(png.bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([pixels.info.width, pixels.info.height], [320, 240]);
    const alphas = Array.from({ length: pixels.info.width * pixels.info.height }, (_, index) => pixels.data[index * 4 + 3]!);
    assert.ok(alphas.some((alpha) => alpha < 16) && alphas.some((alpha) => alpha > 240), "the PNG keeps a transparent background and an opaque subject");
    const mask = await download(first, "Mask");
    assert.equal(mask.name, "orange-disc-mask.png");
    const maskStats = await sharp(mask.bytes).stats();
    assert.ok(maskStats.channels[0]!.min < 16 && maskStats.channels[0]!.max > 240, "the mask is black background, white subject");
    const jpeg = await download(first, "JPEG");
    assert.deepEqual([jpeg.name, (await sharp(jpeg.bytes).metadata()).format], ["orange-disc.jpg", "jpeg"]);

    const [zipped] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: /Download all \(3\) as zip/ }).click()]);
    const entries = unzipSync(new Uint8Array(readFileSync((await zipped.path())!)));
    assert.deepEqual(Object.keys(entries).sort(), ["green-tile.png", "orange-disc.png", "red-star.png"]);
    for (const bytes of Object.values(entries)) assert.equal((await sharp(bytes).metadata()).hasAlpha, true);

    await goTo("Balance", "Balance");
    await page.getByTestId("available-credits").filter({ hasText: String(Number((before - charged).toFixed(3))) }).waitFor();
    await page.getByText("Free trial").first().waitFor();
    await page.locator(".affordable li").first().waitFor();
    await shoot("04-balance");
    await goTo("Usage", "Usage");
    assert.equal(await page.getByTestId("cycle-calls").textContent(), "3");
    assert.equal(await page.locator(".usage-chart .bar:not(.bar-empty)").count(), 1, "one day with use, drawn among the cycle's days");
    await shoot("05-usage");
  });

  it("creates a key, shown once and usable, then revokes it, after which it is refused", async () => {
    await goTo("API keys", "API keys");
    await page.getByLabel("Name").fill("browser test key");
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = (await page.getByTestId("new-key").textContent()) ?? "";
    assert.match(secret, /^cl_/);
    assert.equal(await balanceOverRest(secret), await balanceOverRest(apiKey), "the new key reads the same account");
    const row = page.locator("tr", { hasText: "browser test key" });
    await row.waitFor();
    assert.equal(await page.locator("tr", { hasText: "this session" }).count(), 1, "the key of this session is marked");
    await shoot("06-keys");
    await row.getByRole("button", { name: "Revoke browser test key" }).click();
    await row.getByRole("button", { name: "Revoke now" }).click();
    await row.waitFor({ state: "detached" });
    assert.equal(await page.getByTestId("new-key").count(), 0, "the secret is not shown again");
    const refused = await fetch(`${node.url}/v1/credit/balance`, { headers: { "x-api-key": secret } });
    assert.equal(refused.status, 401);
  });

  it("works at phone width and by keyboard alone", async () => {
    await page.setViewportSize(PHONE);
    await goTo("Remove background", "Remove background");
    await page.locator('.upload-card[data-phase="succeeded"]').first().waitFor();
    assert.ok(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no horizontal scrolling at 390 px");
    await shoot("10-phone");
    await page.setViewportSize(DESKTOP);
    // From the top of the page, Tab reaches the Keys link and Enter opens it.
    await page.goto(`${node.url}/`);
    await page.getByRole("heading", { level: 1, name: "Remove background" }).waitFor();
    let reached = false;
    for (let press = 0; press < 12 && !reached; press += 1) {
      await page.keyboard.press("Tab");
      reached = (await page.evaluate("document.activeElement?.textContent")) === "API keys";
    }
    assert.ok(reached, "Tab reaches the API keys link");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { level: 1, name: "API keys" }).waitFor();
  });

  it("a team member signs in with their own key and sees what the member role allows", async () => {
    // Only business (3 seats) and enterprise admit a second member.
    await node.billing.changePlan({ accountId: "web-user", planCode: "business" });
    await node.billing.setMember({ accountId: "web-user", memberId: "bob", role: "member" });
    await goTo("API keys", "API keys");
    await page.getByLabel("Name").fill("bob's laptop");
    await page.getByLabel("Member (owners and admins)").fill("bob");
    await page.getByRole("button", { name: "Create key" }).click();
    const bobKey = (await page.getByTestId("new-key").textContent()) ?? "";
    assert.match(bobKey, /^cl_/);
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(bobKey);
    await goTo("API keys", "API keys");
    await page.getByText("You are signed in as bob: you see and manage your own keys.").waitFor();
    assert.deepEqual(await page.locator("tbody tr td:first-child").allTextContents(), ["bob's laptopthis session"], "a member sees only their own keys");
    await page.getByLabel("Name").fill("for someone else");
    await page.getByLabel("Member (owners and admins)").fill("web-user-owner");
    await page.getByRole("button", { name: "Create key" }).click();
    const refusal = page.locator('[data-reason="role_forbidden"]');
    await refusal.waitFor();
    assert.match((await refusal.textContent()) ?? "", /Your role does not allow this.*your role is member/);
    await shoot("11-keys-member");
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(apiKey);
  });

  it("shows video and payments as not available on a server without them", async () => {
    await goTo("Video", "Video");
    await page.locator('[data-reason="unavailable"]').or(page.getByRole("button", { name: "Choose a video" })).first().waitFor();
    await shoot("07-video");
    await goTo("Balance", "Balance");
    // Not served here (main has the contract, not yet the service), or served: products or the provider's absence.
    await page.locator('#buy [data-reason="unavailable"]').or(page.locator("#buy .products")).first().waitFor();
    await shoot("08-buy-credits");
  });

  it("tells an account without credits that it is out of credits, with the link to top up", async () => {
    const brokeKey = await node.provisionAccount("web-broke", { grantTrial: false });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { level: 1, name: "Sign in to Cutline" }).waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('cutline.apiKey')"), null);
    await signIn(brokeKey);
    // Too large first: refused on its bytes, before any credit is asked for, naming the limit.
    const noise = join(imagesDir, "noise.png");
    writeFileSync(noise, await sharp(Buffer.from(Array.from({ length: 400 * 400 * 3 }, (_, index) => (index * 7919) % 251)), { raw: { width: 400, height: 400, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer());
    await page.getByTestId("image-input").setInputFiles(noise);
    const tooLarge = page.locator('.upload-card [data-reason="too_many_bytes"]');
    await tooLarge.waitFor({ timeout: IMAGE_DONE_TIMEOUT_MS });
    assert.match((await tooLarge.textContent()) ?? "", /File too large.*the upload limit is 256 KB \(UPLOAD_BYTES_MAX\)/);
    await page.getByTestId("image-input").setInputFiles(images[0]!);
    const problem = page.locator('.upload-card [data-reason="insufficient_credits"]');
    await problem.waitFor({ timeout: IMAGE_DONE_TIMEOUT_MS });
    assert.match((await problem.textContent()) ?? "", /Out of credits\s*0\.5 credits needed, 0 credits available/);
    await shoot("09-out-of-credits");
    await problem.getByRole("link", { name: "Buy credits" }).click();
    await page.getByRole("heading", { level: 1, name: "Balance" }).waitFor();
    assert.equal(new URL(page.url()).pathname + new URL(page.url()).hash, "/balance#buy");
  });

  it("logged no console error on any page", () => {
    assert.deepEqual(consoleErrors, []);
  });
});

// Image build step for deploy/Dockerfile.gpu: onnxruntime-node's CUDA provider, pinned and
// checksummed. onnxruntime-node's own install script downloads whichever NuGet package its
// version names, unverified; this fetches exactly Microsoft.ML.OnnxRuntime.Gpu.Linux <version>,
// refuses it unless its SHA-512 is the one given (NuGet publishes each package's SHA-512, base64,
// as `packageHash` in its catalog entry), and extracts the three provider libraries where
// onnxruntime-node loads them.
//   node deploy/fetch-cuda-provider.mjs --version 1.30.0 --sha512 <base64> [--file <nupkg>] [--target <directory>]
// --version must equal the installed onnxruntime-node's (a CUDA provider of another version does
// not load). --file uses a package already downloaded (air-gapped builds) instead of nuget.org;
// --target writes the libraries elsewhere than onnxruntime-node's bin/napi-v6/linux/x64.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";

const PACKAGE = "Microsoft.ML.OnnxRuntime.Gpu.Linux";
const LIBRARIES = ["libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so", "libonnxruntime_providers_tensorrt.so"];
/** The largest package accepted (bytes); the 1.2x packages are about 400 MB. */
const PACKAGE_BYTES_MAX = 2 * 1024 ** 3;

function fail(message) {
  console.error(`fetch-cuda-provider: ${message}`);
  process.exit(1);
}

const { values } = parseArgs({ options: { version: { type: "string" }, sha512: { type: "string" }, file: { type: "string" }, target: { type: "string" } } });
const root = join(import.meta.dirname, "..");
const require = createRequire(join(root, "package.json"));
const ortDirectory = dirname(require.resolve("onnxruntime-node/package.json"));
const installed = JSON.parse(readFileSync(join(ortDirectory, "package.json"), "utf8")).version;
if (!values.version) fail(`--version is required (the installed onnxruntime-node is ${installed})`);
if (values.version !== installed) fail(`--version ${values.version} differs from the installed onnxruntime-node ${installed}; pin both to one version`);
if (!values.sha512) {
  fail(
    `--sha512 is required: the base64 SHA-512 of ${PACKAGE} ${values.version}, the packageHash of ` +
      `https://api.nuget.org/v3/registration5-gz-semver2/${PACKAGE.toLowerCase()}/${values.version}.json's catalogEntry`,
  );
}

async function download(url) {
  const response = await fetch(url, { redirect: "follow" });
  if (!response.ok) fail(`GET ${url} answered ${response.status}`);
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > PACKAGE_BYTES_MAX) fail(`${url} is ${declared} bytes, past the ${PACKAGE_BYTES_MAX}-byte limit`);
  return Buffer.from(await response.arrayBuffer());
}

const lower = PACKAGE.toLowerCase();
const url = `https://api.nuget.org/v3-flatcontainer/${lower}/${values.version}/${lower}.${values.version}.nupkg`;
const bytes = values.file ? readFileSync(values.file) : await download(url);
const digest = createHash("sha512").update(bytes).digest("base64");
if (digest !== values.sha512) fail(`${values.file ?? url}: SHA-512 ${digest}, expected ${values.sha512}; refusing it`);

const AdmZip = require("adm-zip");
const zip = new AdmZip(bytes);
const target = values.target ?? join(ortDirectory, "bin/napi-v6/linux/x64");
mkdirSync(target, { recursive: true });
for (const library of LIBRARIES) {
  const entry = zip.getEntry(`runtimes/linux-x64/native/${library}`);
  if (!entry) fail(`${PACKAGE} ${values.version} has no runtimes/linux-x64/native/${library}`);
  writeFileSync(join(target, library), entry.getData());
  console.log(`${library} → ${target}`);
}

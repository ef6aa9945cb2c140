// Payload benchmark: the gzip size of what a web app ships to call endRoom.
//
// Each peer SDK is bundled and minified by esbuild (browser platform, ESM) from a small
// entry that imports exactly what an app needs to join and end a room, then gzipped
// (level 9). Ours is the built package as wasm-pack emits it: pkg/*.wasm + pkg/hms_client.js,
// each gzipped. Prints a table and, with --json FILE, writes the figures for bench.sh.
//
// Usage: node bench/size.mjs [--pkg DIR] [--json FILE] [--budget-kb 44]
// Exits 1 when a bundle fails or when our package is over --budget-kb gzip.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { readFileSync, readdirSync, writeFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = parseArgs(process.argv.slice(2));
const pkgDir = resolve(args.pkg ?? join(here, "..", "pkg"));
const budgetKb = Number(args["budget-kb"] ?? 44);

// What a web app needs to call endRoom with each SDK. The entries call the API so that
// tree shaking keeps everything on the path (an import that is never used is dropped).
const PEERS = [
  {
    name: "@100mslive/hms-video-store",
    note: "HMSReactiveStore + hmsActions.join/endRoom",
    entry: `
      import { HMSReactiveStore } from "@100mslive/hms-video-store";
      const hms = new HMSReactiveStore();
      const actions = hms.getActions();
      export async function run(authToken) {
        await actions.join({ userName: "bench", authToken });
        await actions.endRoom(false, "bench");
      }
    `,
  },
  {
    name: "livekit-client",
    note: "Room + connect/disconnect (no client end-room: ending is a server API)",
    entry: `
      import { Room, RoomEvent } from "livekit-client";
      export async function run(url, token) {
        const room = new Room();
        room.on(RoomEvent.Disconnected, (reason) => console.log(reason));
        await room.connect(url, token);
        await room.disconnect();
      }
    `,
  },
];

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    out[a.slice(2)] = argv[i + 1];
    i++;
  }
  return out;
}

const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1); // KiB

// Ours as an app ships it through the same bundler: an entry that imports the package
// (the JS glue, minified like the peers) plus the .wasm file (fetched beside it).
const OURS_BUNDLED_ENTRY = `
  import init, { HmsClient } from "PKG/hms_client.js";
  export async function run(endpoint, authToken) {
    await init();
    const client = new HmsClient({ endpoint });
    await client.join({ authToken, userName: "bench", metadata: "" });
    await client.endRoom(false, "bench");
  }
`;

async function bundlePeer(peer) {
  const dir = mkdtempSync(join(tmpdir(), "hms-size-"));
  try {
    const entryFile = join(dir, "entry.mjs");
    writeFileSync(entryFile, peer.entry);
    const result = await build({
      entryPoints: [entryFile],
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      target: "es2020",
      write: false,
      // Resolve the peer packages from bench/node_modules, not from the temp dir.
      nodePaths: [join(here, "node_modules")],
      define: { "process.env.NODE_ENV": '"production"' },
      logLevel: "silent",
    });
    const code = result.outputFiles[0].contents;
    return { raw: code.length, gzip: gz(code) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function ours() {
  if (!existsSync(pkgDir)) throw new Error(`${pkgDir} does not exist: build it with scripts/build-pkg.sh`);
  const files = readdirSync(pkgDir).filter((f) => f.endsWith(".wasm") || f === "hms_client.js");
  if (!files.some((f) => f.endsWith(".wasm"))) throw new Error(`no .wasm in ${pkgDir}`);
  if (!files.includes("hms_client.js")) throw new Error(`no hms_client.js in ${pkgDir}`);
  let raw = 0;
  let gzip = 0;
  const parts = [];
  for (const f of files.sort()) {
    const buf = readFileSync(join(pkgDir, f));
    raw += buf.length;
    const g = gz(buf);
    gzip += g;
    parts.push(`${f} ${kb(g)} KiB`);
  }
  return { raw, gzip, parts };
}

const rows = [];
let failed = false;
let our;
try {
  our = ours();
  rows.push({ name: "hms-client pkg/", note: our.parts.join(" + "), ...our });
} catch (e) {
  console.error(`size: ours: ${e.message}`);
  failed = true;
}
for (const peer of PEERS) {
  try {
    rows.push({ name: peer.name, note: peer.note, ...(await bundlePeer(peer)) });
  } catch (e) {
    console.error(`size: ${peer.name}: could not bundle: ${e.message}`);
    rows.push({ name: peer.name, note: `could not bundle: ${e.message}`, raw: null, gzip: null });
    failed = true;
  }
}

if (our) {
  try {
    const js = await bundlePeer({ entry: OURS_BUNDLED_ENTRY.replace("PKG", pkgDir.replaceAll("\\", "/")) });
    const wasm = readFileSync(join(pkgDir, readdirSync(pkgDir).find((f) => f.endsWith(".wasm"))));
    rows.splice(1, 0, {
      name: "hms-client pkg/ bundled",
      note: `glue bundled+minified by esbuild like the peers ${kb(js.gzip)} KiB + .wasm ${kb(gz(wasm))} KiB`,
      raw: js.raw + wasm.length,
      gzip: js.gzip + gz(wasm),
    });
  } catch (e) {
    console.error(`size: ours bundled: ${e.message}`);
    failed = true;
  }
}
const ourBundled = rows.find((r) => r.name === "hms-client pkg/ bundled");
const peerRows = rows.filter((r) => !r.name.startsWith("hms-client pkg/") && r.gzip != null);
const smaller = peerRows.length ? peerRows.reduce((a, b) => (a.gzip <= b.gzip ? a : b)) : null;

console.log("| payload | bytes (minified where bundled) | gzip bytes | gzip KiB | pkg/ as shipped / this |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) {
  const ratio = our && r.gzip && !r.name.startsWith("hms-client pkg/") ? (our.gzip / r.gzip).toFixed(3) : "-";
  console.log(`| ${r.name} (${r.note}) | ${r.raw ?? "-"} | ${r.gzip ?? "-"} | ${r.gzip ? kb(r.gzip) : "-"} | ${ratio} |`);
}
let goalMet = null;
if (our && smaller) {
  // The goal is judged on pkg/ as it ships (glue not minified): the stricter figure.
  const ratio = our.gzip / smaller.gzip;
  goalMet = ratio <= 0.25;
  console.log(
    `size goal (pkg/ as shipped <= 1/4 of the smaller peer, ${smaller.name}): ${ratio.toFixed(3)} -> ${goalMet ? "met" : "NOT met"}`,
  );
  if (ourBundled) {
    const r2 = ourBundled.gzip / smaller.gzip;
    console.log(`size goal, bundled like the peers: ${r2.toFixed(3)} -> ${r2 <= 0.25 ? "met" : "NOT met"}`);
  }
}
if (our) {
  const over = our.gzip > budgetKb * 1024;
  console.log(`size budget (ours <= ${budgetKb} KiB gzip, each file gzipped as served): ${kb(our.gzip)} KiB -> ${over ? "OVER" : "ok"}`);
  if (over) failed = true;
}
if (args.json) {
  writeFileSync(args.json, JSON.stringify({ rows, smaller: smaller?.name ?? null, goalMet }, null, 2));
}
process.exit(failed ? 1 : 0);

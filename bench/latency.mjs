// Latency benchmark in headless Chromium, the SDK as users run it.
//
// Starts the real server (serve --www bench/page --pkg PKG on 127.0.0.1:0, temp data dir,
// known secret), opens bench/page in Debian's Chromium through playwright-core, and:
//   - reloads the page --loads times: wasm fetch + compile + instantiate per load;
//   - runs --trials trials each for N = 10 and N = 100 guests: host join time, endRoom
//     resolve time, time until the last guest's onRemovedFromRoom, each beside the floor
//     (a bare browser WebSocket to the same server, same page, same trial).
// Prints median and p10/p90 of each, writes --json FILE for scripts/bench.sh.
//
// Usage: node bench/latency.mjs --server-bin target/server-release/hms-server --pkg pkg
//        [--trials 15] [--loads 10] [--guests 0,10,100] [--json FILE]
// N = 0 (the host alone) times endRoom without N guests' pushes queued in the same page.
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, cliArgs, startServer as startCommon, stats, token as tokenCommon } from "./common.mjs";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { tmpdir } from "node:os";
import { randomUUID, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = cliArgs();
const serverBin = resolve(args["server-bin"] ?? join(here, "..", "target", "server-release", "hms-server"));
const pkgDir = resolve(args.pkg ?? join(here, "..", "pkg"));
const trials = Number(args.trials ?? 15);
const loads = Number(args.loads ?? 10);
const guestCounts = (args.guests ?? "0,10,100").split(",").map(Number);
const chromiumPath = args.chromium ?? "/usr/bin/chromium";
const overallTimeoutMs = Number(args["timeout-s"] ?? 600) * 1000;

export { stats };

// The server child, so that every way out (including the overall timeout) stops it.
let serverChild = null;

async function startServer(dataDir, secret) {
  const started = await startCommon({ serverBin, pkgDir, dataDir, secret });
  serverChild = started.child;
  return started;
}

function token(dataDir, secret, room, user, role) {
  return tokenCommon({ serverBin, dataDir, secret }, room, user, role);
}

async function main() {
  if (!existsSync(serverBin)) throw new Error(`${serverBin} not found: build it first`);
  if (!existsSync(join(pkgDir, "hms_client.js"))) throw new Error(`${pkgDir}/hms_client.js not found: run scripts/build-pkg.sh`);
  const dataDir = mkdtempSync(join(tmpdir(), "hms-latency-"));
  const secret = randomBytes(24).toString("hex");
  const { child, addr } = await startServer(dataDir, secret);
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error(`page error: ${e}`));
    const base = `http://${addr}`;
    const endpoint = `ws://${addr}/ws`;

    // Start-up, once per page load.
    const startup = { fetchCompileMs: [], instantiateMs: [], totalMs: [] };
    for (let i = 0; i < Math.max(1, loads); i++) {
      await page.goto(`${base}/index.html`, { waitUntil: "load" });
      await page.waitForFunction(() => window.benchStartup || window.benchError, null, { timeout: 30000 });
      const err = await page.evaluate(() => window.benchError);
      if (err) throw new Error(`page: ${err}`);
      const s = await page.evaluate(() => window.benchStartup);
      for (const k of Object.keys(startup)) startup[k].push(s[k]);
    }

    const results = { startup: Object.fromEntries(Object.entries(startup).map(([k, v]) => [k, stats(v)])), trials: {} };
    const problems = [];
    for (const n of guestCounts) {
      const samples = { joinMs: [], rawConnectRoundTripMs: [], bareJoinMs: [], bareEndRoomMs: [], endRoomMs: [], rawRoundTripMs: [], lastRemovedMs: [] };
      // Each step of the host's join, from the join call (ms): see bench/page/bench.js.
      const joinMarks = {};
      // One warm-up trial (JIT, connection setup paths) that is not counted.
      for (let t = -1; t < trials; t++) {
        const room = `bench-${n}-${randomUUID().slice(0, 8)}`;
        const hostToken = token(dataDir, secret, room, "host", "host");
        const guestToken = token(dataDir, secret, room, "guest", "guest");
        const bareToken = token(dataDir, secret, `${room}-bare`, "bare", "host");
        const reason = `bench ${room} ended`;
        const r = await page.evaluate((p) => window.bench.trial(p), { endpoint, hostToken, guestToken, bareToken, n, reason });
        problems.push(...r.problems.map((p) => `N=${n} trial ${t}: ${p}`));
        if (t < 0) continue;
        samples.joinMs.push(r.joinMs);
        samples.rawConnectRoundTripMs.push(r.rawConnectRoundTripMs);
        if (r.bareJoinMs != null) samples.bareJoinMs.push(r.bareJoinMs);
        if (r.bareEndRoomMs != null) samples.bareEndRoomMs.push(r.bareEndRoomMs);
        for (const [k, v] of Object.entries(r.joinMarks ?? {})) (joinMarks[k] ??= []).push(v);
        samples.endRoomMs.push(r.endRoomMs);
        // The floor of this trial: the median of its bare round trips.
        samples.rawRoundTripMs.push(stats(r.rawRoundTripsMs).median);
        if (r.lastRemovedMs != null) samples.lastRemovedMs.push(r.lastRemovedMs);
      }
      results.trials[n] = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, stats(v)]));
      results.trials[n].joinMarks = Object.fromEntries(Object.entries(joinMarks).map(([k, v]) => [k, stats(v)]));
    }
    results.problems = problems;
    results.chromium = browser.version();

    const f = (x) => x.toFixed(3);
    console.log(`chromium ${results.chromium}, ${trials} trials per N (+1 warm-up), ${loads} page loads`);
    console.log("| metric | median ms | p10 ms | p90 ms | floor (bare WebSocket) median ms | ratio |");
    console.log("|---|---:|---:|---:|---:|---:|");
    const s = results.startup.totalMs;
    console.log(`| wasm fetch+compile+instantiate | ${f(s.median)} | ${f(s.p10)} | ${f(s.p90)} | - | - |`);
    for (const n of guestCounts) {
      const r = results.trials[n];
      const row = (name, m, floor) =>
        console.log(`| ${name} (N=${n}) | ${f(m.median)} | ${f(m.p10)} | ${f(m.p90)} | ${f(floor.median)} | ${(m.median / floor.median).toFixed(2)} |`);
      row("join", r.joinMs, r.rawConnectRoundTripMs);
      if (r.bareJoinMs.n) row("join vs a bare join (open + join + answer, policy, peer list)", r.joinMs, r.bareJoinMs);
      row("endRoom resolve", r.endRoomMs, r.rawRoundTripMs);
      if (r.bareEndRoomMs.n) row("endRoom vs a bare end-room (own room, no guests)", r.endRoomMs, r.bareEndRoomMs);
      if (r.lastRemovedMs.n) row("last onRemovedFromRoom", r.lastRemovedMs, r.rawRoundTripMs);
    }
    for (const n of guestCounts) {
      const m = results.trials[n].joinMarks;
      const order = ["created", "open", "joinSent", "answer", "on-policy-change", "peer-list", "resolved"];
      const parts = order.filter((k) => m[k]).map((k) => `${k} ${f(m[k].median)}`);
      console.log(`join steps (N=${n}), median ms from the join call: ${parts.join(", ")}`);
    }
    for (const p of problems.slice(0, 20)) console.log(`problem: ${p}`);
    if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 2));
    return problems.length === 0;
  } finally {
    await browser.close().catch(() => {});
    child.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  console.error(`latency: gave up after ${overallTimeoutMs / 1000} s`);
  serverChild?.kill("SIGKILL");
  process.exit(2);
}, overallTimeoutMs);
main().then(
  (ok) => {
    clearTimeout(timer);
    process.exit(ok ? 0 : 1);
  },
  (e) => {
    clearTimeout(timer);
    console.error(`latency: ${e.stack || e}`);
    process.exit(2);
  },
);

// Fan-out in the page against its real floor (issue 13). For each N, in one page of
// headless Chromium and one run: alternating pairs of
//   sdk:  a host HmsClient ends a room of N guest HmsClients (each its own socket);
//   bare: a bare host WebSocket ends a room of N bare guest WebSockets that do
//         onmessage + JSON.parse (Chromium's own per-socket work: the floor).
// Each side reports, from the end-room call, the host's answer (endRoom resolved / the
// bare answer) and the time until the last guest heard of the end (onRemovedFromRoom /
// the parsed notice). Prints medians, p10/p90 and the ratio sdk / bare of the medians.
//
// The page is driven over a bare DevTools pipe (--remote-debugging-pipe): Playwright's
// network reporting slows both sides by a third or more. The server's data dir is on
// tmpfs (/dev/shm) so the end-room fsync is not part of either side.
//
// Usage: node bench/fanout.mjs [--server-bin target/server-release/hms-server] [--pkg pkg]
//        [--pairs 15] [--guests 10,100,250] [--json FILE] [--profile FILE]
// --profile also records a CPU profile (.cpuprofile, DevTools' format) of one more SDK side
// at the largest N: where the page's time goes between end-room and the last guest.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { tmpdir } from "node:os";
import { randomBytes, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { CHROMIUM_ARGS, cliArgs, startServer, stats, token } from "./common.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const args = cliArgs();
const serverBin = resolve(args["server-bin"] ?? join(here, "..", "target", "server-release", "hms-server"));
const pkgDir = resolve(args.pkg ?? join(here, "..", "pkg"));
const pairs = Number(args.pairs ?? 15);
const guestCounts = (args.guests ?? "10,100,250").split(",").map(Number);
const chromiumPath = args.chromium ?? "/usr/bin/chromium";
const overallTimeoutMs = Number(args["timeout-s"] ?? 900) * 1000;

// Every process started here, so that every way out (the overall timeout too) stops it.
const children = [];

// SIGKILL to a child, and to its process group when it has its own (Chromium's helpers).
function stop(c) {
  try {
    process.kill(-c.pid, "SIGKILL");
  } catch {
    c.kill("SIGKILL");
  }
}

// A minimal DevTools client over the pipe Chromium opens on fds 3 (in) and 4 (out):
// JSON messages separated by NUL bytes.
function devtools(child, onEvent) {
  const out = child.stdio[3];
  const pending = new Map();
  let nextId = 1;
  let buf = "";
  child.stdio[4].on("data", (chunk) => {
    buf += chunk.toString("utf8");
    for (let at = buf.indexOf("\0"); at >= 0; at = buf.indexOf("\0")) {
      const msg = JSON.parse(buf.slice(0, at));
      buf = buf.slice(at + 1);
      if (msg.method) onEvent(msg);
      const p = msg.id && pending.get(msg.id);
      if (p) {
        pending.delete(msg.id);
        msg.error ? p.reject(new Error(`${p.method}: ${msg.error.message}`)) : p.resolve(msg.result);
      }
    }
  });
  return (method, params = {}, sessionId) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject, method });
      out.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + "\0");
    });
}

async function main() {
  if (!existsSync(serverBin)) throw new Error(`${serverBin} not found: build it first`);
  const dataDir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "hms-fanout-"));
  const profile = mkdtempSync(join(tmpdir(), "hms-fanout-chromium-"));
  const secret = randomBytes(24).toString("hex");
  const { child: server, addr } = await startServer({ serverBin, pkgDir, dataDir, secret });
  children.push(server);
  const chrome = spawn(
    chromiumPath,
    [...CHROMIUM_ARGS, "--headless", "--remote-debugging-pipe", `--user-data-dir=${profile}`, `http://${addr}/index.html`],
    // Its own process group, so its helper processes stop with it.
    { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"], detached: true },
  );
  children.push(chrome);
  try {
    const events = [];
    const cdp = devtools(chrome, (e) => events.push(e));
    let page;
    for (let i = 0; i < 100 && !page; i++) {
      const { targetInfos } = await cdp("Target.getTargets");
      page = targetInfos.find((t) => t.type === "page");
      if (!page) await new Promise((r) => setTimeout(r, 100));
    }
    if (!page) throw new Error("Chromium opened no page");
    const { sessionId } = await cdp("Target.attachToTarget", { targetId: page.targetId, flatten: true });
    const evaluate = async (expression) => {
      const r = await cdp("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }, sessionId);
      if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value;
    };
    for (let i = 0; ; i++) {
      const state = await evaluate("document.getElementById('status')?.textContent ?? ''");
      if (state === "ready") break;
      if (state.startsWith("error") || i > 300) throw new Error(`page did not start: ${state}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const version = (await cdp("Browser.getVersion")).product;
    const endpoint = `ws://${addr}/ws`;
    const results = {};
    console.log(`${version}, ${pairs} alternating pairs per N (+1 warm-up), page driven over the DevTools pipe, data dir ${dataDir}`);
    console.log("| N | SDK last guest ms (p10-p90) | bare last guest ms (p10-p90) | ratio | SDK endRoom resolve ms | bare host answer ms | ratio |");
    console.log("|---:|---|---|---:|---|---|---:|");
    for (const n of guestCounts) {
      const samples = { sdk: { answerMs: [], lastHeardMs: [] }, bare: { answerMs: [], lastHeardMs: [] } };
      for (let pair = -1; pair < pairs; pair++) {
        // Alternate which side goes first, so neither always follows the other.
        const order = pair % 2 === 0 ? ["sdk", "bare"] : ["bare", "sdk"];
        for (const side of order) {
          const room = `fan-${n}-${side}-${randomUUID()}`;
          const cfg = {
            endpoint,
            hostToken: token({ serverBin, dataDir, secret }, room, "host", "host"),
            guestToken: token({ serverBin, dataDir, secret }, room, "guest", "guest"),
            n,
            side,
            reason: "fan-out",
          };
          const r = await evaluate(`window.bench.fanout(${JSON.stringify(cfg)})`);
          if (pair >= 0) {
            samples[side].answerMs.push(r.answerMs);
            samples[side].lastHeardMs.push(r.lastHeardMs);
          }
          // Let the closed sockets go (Chromium caps a page's WebSockets at 255).
          await new Promise((res) => setTimeout(res, 500));
        }
      }
      const s = Object.fromEntries(["sdk", "bare"].map((k) => [k, { answerMs: stats(samples[k].answerMs), lastHeardMs: stats(samples[k].lastHeardMs) }]));
      results[n] = { ...s, samples };
      const f = (x) => x.toFixed(1);
      const span = (m) => `${f(m.median)} (${f(m.p10)}-${f(m.p90)})`;
      console.log(
        `| ${n} | ${span(s.sdk.lastHeardMs)} | ${span(s.bare.lastHeardMs)} | ${(s.sdk.lastHeardMs.median / s.bare.lastHeardMs.median).toFixed(2)} | ` +
          `${span(s.sdk.answerMs)} | ${span(s.bare.answerMs)} | ${(s.sdk.answerMs.median / s.bare.answerMs.median).toFixed(2)} |`,
      );
    }
    if (args.json) writeFileSync(args.json, JSON.stringify({ version, pairs, results }, null, 2));
    if (args.profile) {
      const n = Math.max(...guestCounts);
      const room = `fan-profile-${randomUUID()}`;
      const cfg = {
        endpoint,
        hostToken: token({ serverBin, dataDir, secret }, room, "host", "host"),
        guestToken: token({ serverBin, dataDir, secret }, room, "guest", "guest"),
        n,
        side: "sdk",
        reason: "fan-out",
        profile: true,
      };
      await cdp("Profiler.enable", {}, sessionId);
      await cdp("Profiler.setSamplingInterval", { interval: 100 }, sessionId);
      await evaluate(`window.bench.fanout(${JSON.stringify(cfg)})`);
      const done = events.find((e) => e.method === "Profiler.consoleProfileFinished");
      if (!done) throw new Error("the page recorded no profile");
      writeFileSync(args.profile, JSON.stringify(done.params.profile));
      console.log(`CPU profile of one SDK side at N=${n}: ${args.profile}`);
    }
  } finally {
    // Stopped, and gone, before their directories are removed.
    await Promise.all([chrome, server].map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => (c.once("exit", r), stop(c))))));
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 5 });
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

const timer = setTimeout(() => {
  console.error(`fanout: gave up after ${overallTimeoutMs / 1000} s`);
  for (const c of children) stop(c);
  process.exit(2);
}, overallTimeoutMs);
main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (e) => {
    clearTimeout(timer);
    console.error(`fanout: ${e.stack || e}`);
    process.exit(2);
  },
);

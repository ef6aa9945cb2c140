// Test harness of the end-to-end tests: starts the real room server (port 0, a fresh temp
// data dir, its own HMS_SECRET) serving www/ and pkg/, mints a management token with the
// real CLI, creates room codes over REST, and drives Debian's Chromium with playwright-core.
// Every wait has a deadline; every page's console errors and uncaught exceptions are kept
// so that a test can fail on them.

import { spawn, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ARTIFACTS = join(REPO, "tests", "artifacts", "e2e");

/** Chromium's flags for a quiet, offline, sandbox-less headless run (root in CI). */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-quic",
  "--disable-sync",
];

export const LAPTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** The server binary: $HMS_SERVER_BIN, else the dev build, else the server-release build. */
export function serverBinary() {
  const candidates = [
    process.env.HMS_SERVER_BIN,
    join(REPO, "target", "debug", "hms-server"),
    join(REPO, "target", "server-release", "hms-server"),
  ].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`no hms-server binary (looked at ${candidates.join(", ")}); run cargo build -p hms-server`);
  }
  return found;
}

/** Rejects after `ms` with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function run(bin, args, env, ms) {
  return withTimeout(
    new Promise((resolvePromise, reject) => {
      execFile(bin, args, { env, timeout: ms }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${bin} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        else resolvePromise(stdout);
      });
    }),
    ms + 1000,
    `${bin} ${args[0]}`,
  );
}

/**
 * A running hms-server. `start()` resolves once it printed `listening on 127.0.0.1:PORT`.
 */
export class Server {
  static async start() {
    const server = new Server();
    await server.#start();
    return server;
  }

  #proc = null;
  #exited = null;
  logs = [];

  async #start() {
    this.bin = serverBinary();
    this.dataDir = await mkdtemp(join(tmpdir(), "hms-e2e-"));
    // A secret of the test's own, so nothing on the machine (config, old data dirs) matters.
    this.env = { ...process.env, HMS_SECRET: randomBytes(32).toString("hex"), RUST_LOG: process.env.RUST_LOG ?? "info" };
    await this.#spawn("127.0.0.1:0");
    this.managementToken = (await run(this.bin, ["token", "--management", "--data-dir", this.dataDir], this.env, 15_000)).trim();
    if (!this.managementToken) throw new Error("hms-server token --management printed nothing");
  }

  /** Starts the binary on `addr` with this server's data dir and secret; resolves when it listens. */
  async #spawn(addr) {
    const args = [
      "serve", "--addr", addr, "--data-dir", this.dataDir,
      "--www", join(REPO, "www"), "--pkg", process.env.HMS_PKG_DIR ?? join(REPO, "pkg"),
    ];
    const proc = spawn(this.bin, args, { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    this.#proc = proc;
    this.#exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => this.#log(chunk));
    const lines = createInterface({ input: proc.stdout });
    const listening = new Promise((resolvePromise, reject) => {
      lines.on("line", (line) => {
        this.#log(`${line}\n`);
        const m = /^listening on (127\.0\.0\.1:\d+)\s*$/.exec(line);
        if (m) resolvePromise(m[1]);
      });
      proc.once("error", reject);
      this.#exited.then(({ code, signal }) =>
        reject(new Error(`hms-server exited (code ${code}, signal ${signal}) before listening:\n${this.logText()}`)));
    });
    const bound = await withTimeout(listening, 20_000, "the server's `listening on` line");
    this.addr = bound;
    this.origin = `http://${bound}`;
  }

  /** Kills the server at once (SIGKILL: no goodbye frames), as a crash would. */
  async crash() {
    this.#proc.kill("SIGKILL");
    await withTimeout(this.#exited, 5_000, "hms-server to die on SIGKILL");
  }

  /** Starts the server again on the same address, data dir and secret (after `crash`). */
  async restart() {
    await this.#spawn(this.addr);
  }

  #log(text) {
    this.logs.push(text);
    // Keep the tail only: enough to explain a failure, not the whole run.
    if (this.logs.length > 2000) this.logs.splice(0, this.logs.length - 2000);
  }

  logText() {
    return this.logs.join("").split("\n").slice(-60).join("\n");
  }

  /** A management REST call; returns the parsed JSON body, throws on a non-2xx status. */
  async rest(method, path, body) {
    const res = await fetch(`${this.origin}${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.managementToken}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} -> ${res.status}: ${text}`);
    return text ? JSON.parse(text) : {};
  }

  /** Creates the room (on demand) and its room codes: { host: "abc-...", guest: "..." }. */
  async roomCodes(roomId) {
    const body = await this.rest("POST", `/v2/room-codes/room/${encodeURIComponent(roomId)}`);
    const codes = {};
    for (const entry of body.data ?? []) codes[entry.role] = entry.code;
    if (!codes.host || !codes.guest) throw new Error(`room codes lack host or guest: ${JSON.stringify(body)}`);
    return codes;
  }

  /** The back end ends a room through the REST API. */
  endRoom(roomId, reason, lock = false) {
    return this.rest("POST", `/v2/active-rooms/${encodeURIComponent(roomId)}/end-room`, { reason, lock });
  }

  async stop() {
    if (this.#proc && this.#proc.exitCode === null && this.#proc.signalCode === null) {
      this.#proc.kill("SIGTERM");
      try {
        await withTimeout(this.#exited, 5_000, "hms-server to exit on SIGTERM");
      } catch {
        this.#proc.kill("SIGKILL");
        await withTimeout(this.#exited, 5_000, "hms-server to exit on SIGKILL");
      }
    }
    if (this.dataDir) await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** A fresh, unique room id per test, so tests never see each other's peers. */
export function freshRoomId(label) {
  return `e2e-${label}-${randomBytes(4).toString("hex")}`;
}

export async function launchBrowser() {
  return withTimeout(
    chromium.launch({ executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium", args: CHROMIUM_ARGS, timeout: 30_000 }),
    35_000,
    "Chromium to launch",
  );
}

/**
 * One person's tab: its own browser context (own storage), a viewport, and the console
 * errors and page errors it produced. `allow` lists regexes of console errors the test
 * expects (e.g. the 404 of a bad room code's token request).
 */
export class Person {
  static async open(browser, label, { viewport = LAPTOP, isMobile = false } = {}) {
    const context = await browser.newContext({ viewport, isMobile, hasTouch: isMobile, deviceScaleFactor: 1 });
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(15_000);
    const page = await context.newPage();
    return new Person(label, context, page);
  }

  constructor(label, context, page) {
    this.label = label;
    this.context = context;
    this.page = page;
    this.problems = [];
    this.allowed = [];
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      const text = msg.text();
      if (this.allowed.some((re) => re.test(text))) return;
      this.problems.push(`console.error: ${text} (${msg.location().url ?? ""})`);
    });
    page.on("pageerror", (err) => this.problems.push(`pageerror: ${err.stack ?? err.message}`));
    page.on("crash", () => this.problems.push("page crashed"));
  }

  /** Console errors matching `re` are expected from now on (e.g. an HTTP 404 the app handles). */
  allow(re) {
    this.allowed.push(re);
  }

  async goto(origin, code) {
    const url = code === undefined ? `${origin}/` : `${origin}/?code=${encodeURIComponent(code)}`;
    await this.page.goto(url);
    // app.js sets data-ready once the SDK module is loaded and init() has resolved.
    try {
      await this.page.locator("body[data-ready=true]").waitFor({ state: "attached", timeout: 15_000 });
    } catch (err) {
      const shown = await this.byTestId("loading-text").textContent().catch(() => "?");
      // Seen with Debian's wasm-opt 108: it breaks wasm-bindgen's externref table.
      const hint = /WebAssembly\.Table\.set/.test(shown)
        ? "\nhint: pkg/ was optimised by a wasm-opt that breaks the externref table (Debian's binaryen 108 does); see docs/DEMO.md"
        : "";
      throw new Error(`${this.label}: the app did not start: ${shown}${hint}\n${this.problems.join("\n")}`, { cause: err });
    }
    await this.byTestId("join-screen").waitFor({ state: "visible" });
  }

  byTestId(id) {
    return this.page.getByTestId(id);
  }

  /** Fills in the join form and presses Join (the code comes from ?code= unless given). */
  async join(name, code) {
    await this.byTestId("join-name").fill(name);
    if (code !== undefined) await this.byTestId("join-code").fill(code);
    await this.byTestId("join-submit").click();
  }

  async joinAndWait(name, code) {
    await this.join(name, code);
    await this.byTestId("room-screen").waitFor({ state: "visible" });
  }

  /** Names in the peer list, in the list's order, "(you)" marked. */
  async peerNames() {
    return this.page.getByTestId("peer").evaluateAll((items) =>
      items.map((li) => {
        const name = li.querySelector("[data-testid=peer-name]")?.textContent ?? "";
        return li.dataset.local === "true" ? `${name} (you)` : name;
      }));
  }

  /** Waits until the peer list shows exactly `names` (any order; local one as "X (you)"). */
  async waitForPeers(names, timeout = 10_000) {
    const want = [...names].sort();
    const deadline = Date.now() + timeout;
    let got = [];
    while (Date.now() < deadline) {
      got = (await this.peerNames()).sort();
      if (JSON.stringify(got) === JSON.stringify(want)) return;
      await this.page.waitForTimeout(50);
    }
    throw new Error(`${this.label}: peer list is ${JSON.stringify(got)}, wanted ${JSON.stringify(want)} within ${timeout} ms`);
  }

  peerRow(name) {
    return this.page.getByTestId("peer").filter({ has: this.page.getByTestId("peer-name").getByText(name, { exact: true }) });
  }

  async endedMessage() {
    await this.byTestId("ended-screen").waitFor({ state: "visible" });
    return (await this.byTestId("ended-message").textContent()).trim();
  }

  async screenshot(name) {
    await mkdir(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, `${name}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
    return file;
  }

  /** True when the page is wider than its viewport (something sticks out sideways). */
  async overflowsSideways() {
    return this.page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
  }

  async close() {
    await withTimeout(this.context.close(), 10_000, `${this.label}'s browser context to close`);
  }
}

/** Fails with every console error and page error any of `people` collected. */
export function assertNoPageProblems(people) {
  const problems = people.flatMap((p) => p.problems.map((m) => `[${p.label}] ${m}`));
  if (problems.length > 0) throw new Error(`the pages reported errors:\n${problems.join("\n")}`);
}

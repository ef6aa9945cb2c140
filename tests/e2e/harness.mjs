// Test harness of the end-to-end tests: starts the real room server (port 0, a fresh temp
// data dir, its own HMS_SECRET) serving an app (www/ by default) and the SDK package at
// /pkg/, mints a management token with the real CLI, creates room codes over REST, and
// drives Debian's Chromium and Firefox ESR with puppeteer-core (Chromium over CDP, Firefox
// over WebDriver BiDi: playwright-core cannot drive Debian's Firefox, and one driver keeps
// one set of helpers for both). Every wait has a deadline; every page's console errors and
// uncaught exceptions are kept so that a test can fail on them.

import { spawn, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ARTIFACTS = join(REPO, "tests", "artifacts", "e2e");

/**
 * The browsers every suite runs in: $E2E_BROWSERS (comma-separated), else both. Each
 * suite runs its tests once per browser, one browser at a time.
 */
export const BROWSERS = (process.env.E2E_BROWSERS ?? "chromium,firefox").split(",").map((b) => b.trim()).filter(Boolean);

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
  /**
   * `www`: the app served at / (default www/); `pkg`: served at /pkg/ (default pkg/);
   * `dataDir`: an existing data dir to use (default a fresh temp dir); `secret`: the
   * HMS_SECRET (default a random one). `stop()` removes the data dir either way.
   */
  static async start({ www = join(REPO, "www"), pkg = process.env.HMS_PKG_DIR ?? join(REPO, "pkg"), dataDir, secret } = {}) {
    const server = new Server(www, pkg);
    await server.#start(dataDir, secret);
    return server;
  }

  constructor(www, pkg) {
    this.www = www;
    this.pkg = pkg;
  }

  /** The secret tokens are signed with (hex text, used as it is). */
  get secret() {
    return this.env.HMS_SECRET;
  }

  #proc = null;
  #exited = null;
  logs = [];

  async #start(dataDir, secret) {
    this.bin = serverBinary();
    this.dataDir = dataDir ?? await mkdtemp(join(tmpdir(), "hms-e2e-"));
    // A secret of the test's own, so nothing on the machine (config, old data dirs) matters.
    this.env = { ...process.env, HMS_SECRET: secret ?? randomBytes(32).toString("hex"), RUST_LOG: process.env.RUST_LOG ?? "info" };
    await this.#spawn("127.0.0.1:0");
    this.managementToken = (await run(this.bin, ["token", "--management", "--data-dir", this.dataDir], this.env, 15_000)).trim();
    if (!this.managementToken) throw new Error("hms-server token --management printed nothing");
  }

  /** Starts the binary on `addr` with this server's data dir and secret; resolves when it listens. */
  async #spawn(addr) {
    const args = [
      "serve", "--addr", addr, "--data-dir", this.dataDir,
      "--www", this.www, "--pkg", this.pkg,
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
    this.wsEndpoint = `ws://${bound}/ws`;
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

async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * A Vite dev server (the vite.js of `bin`) run in `cwd` on `root`, on 127.0.0.1 and a free
 * port, with --force (its dependency optimizer runs as on a fresh checkout). Resolves once
 * it serves: { origin, output (its log), stop() }.
 */
export async function startViteDev(bin, cwd, root = ".") {
  const port = await freePort();
  const proc = spawn(process.execPath, [bin, root, "--host", "127.0.0.1", "--port", String(port), "--strictPort", "--force"],
    { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  const output = [];
  proc.stderr.setEncoding("utf8").on("data", (d) => output.push(d));
  const exited = new Promise((r) => proc.once("exit", r));
  const ready = new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      output.push(`${line}\n`);
      if (line.includes(`http://127.0.0.1:${port}/`)) resolve();
    });
    exited.then((code) => reject(new Error(`vite exited (${code}) before serving:\n${output.join("")}`)));
  });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    await withTimeout(exited, 10_000, "vite to exit").catch(() => proc.kill("SIGKILL"));
  };
  try {
    await withTimeout(ready, 60_000, "the Vite dev server");
  } catch (err) {
    await stop();
    throw err;
  }
  return { origin: `http://127.0.0.1:${port}`, output, stop };
}

/** A fresh, unique room id per test, so tests never see each other's peers. */
export function freshRoomId(label) {
  return `e2e-${label}-${randomBytes(4).toString("hex")}`;
}

/** How each browser is launched: Debian's binaries (never a downloaded one). */
const LAUNCH = {
  chromium: { browser: "chrome", executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium", args: CHROMIUM_ARGS },
  firefox: { browser: "firefox", executablePath: process.env.FIREFOX_BIN ?? "/usr/bin/firefox-esr", args: [] },
};

/** Launches `name` ("chromium" or "firefox") headless; `browser.label` is its name. */
export async function launchBrowser(name = "chromium") {
  const opts = LAUNCH[name];
  if (!opts) throw new Error(`unknown browser ${name} (E2E_BROWSERS takes chromium, firefox)`);
  const browser = await withTimeout(puppeteer.launch({ ...opts, headless: true, timeout: 30_000 }), 35_000, `${name} to launch`);
  browser.label = name;
  return browser;
}

/** Closes a browser launched by `launchBrowser`, killing it if it does not close in time. */
export async function closeBrowser(browser) {
  if (!browser) return;
  try {
    await withTimeout(browser.close(), 15_000, `${browser.label} to close`);
  } catch (err) {
    console.error(err);
    browser.process()?.kill("SIGKILL");
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Finds the elements of a locator's steps in the page: each step is a CSS selector applied
// below the previous step's elements, optionally kept only when a descendant matching
// `has.css` has exactly the text `has.text`. Runs in the page (sent as source text).
const FIND = `(steps) => {
  let els = [document];
  for (const s of steps) {
    els = els.flatMap((e) => [...e.querySelectorAll(s.css)]);
    if (s.has) els = els.filter((e) => [...e.querySelectorAll(s.has.css)].some((x) => x.textContent === s.has.text));
  }
  return els;
}`;
const VISIBLE = "(el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden'";

/**
 * The part of Playwright's Locator API the tests use, on puppeteer: lazy, re-queried on each
 * call; actions wait (with a deadline) for exactly one visible element, as Playwright's do.
 */
export class Locator {
  constructor(page, steps, timeout) {
    this.page = page;
    this.steps = steps;
    this.timeout = timeout;
  }

  getByTestId(id) {
    return new Locator(this.page, [...this.steps, { css: `[data-testid="${id}"]` }], this.timeout);
  }

  /** Elements whose descendant `[data-testid=testId]` has exactly `text`. */
  filterByTestIdText(testId, text) {
    const last = this.steps.at(-1);
    return new Locator(this.page, [...this.steps.slice(0, -1), { ...last, has: { css: `[data-testid="${testId}"]`, text } }], this.timeout);
  }

  toString() {
    return this.steps.map((s) => (s.has ? `${s.css}:has(${s.has.css} = ${JSON.stringify(s.has.text)})` : s.css)).join(" ");
  }

  /** Runs `fn(elements, arg)` in the page; `fn` must be self-contained (it is sent as text). */
  #eval(fn, arg) {
    return this.page.evaluate(`(${fn})((${FIND})(${JSON.stringify(this.steps)}), ${JSON.stringify(arg ?? null)}, ${VISIBLE})`);
  }

  /** Polls `fn` (as #eval) until it returns a truthy value; throws after `timeout`. */
  async #poll(fn, arg, what, timeout = this.timeout) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const got = await this.#eval(fn, arg);
      if (got) return got;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${this} to be ${what}`);
      await sleep(50);
    }
  }

  /** `state`: "visible" (default), "hidden" (absent or invisible) or "attached". */
  async waitFor({ state = "visible", timeout = this.timeout } = {}) {
    const checks = {
      visible: (els, _, vis) => els.some(vis),
      hidden: (els, _, vis) => !els.some(vis),
      attached: (els) => els.length > 0,
    };
    await this.#poll(checks[state], null, state, timeout);
  }

  /** The one visible element's handle, waiting for it (Playwright's strictness included). */
  async #element() {
    await this.#poll((els, _, vis) => els.filter(vis).length === 1 || (els.filter(vis).length > 1 && "many"), null, "visible");
    const count = await this.#eval((els, _, vis) => els.filter(vis).length);
    if (count !== 1) throw new Error(`${this} matches ${count} visible elements, expected one`);
    const handle = await this.page.evaluateHandle(`(${FIND})(${JSON.stringify(this.steps)}).filter(${VISIBLE})[0]`);
    return handle.asElement();
  }

  /**
   * A real pointer click at the element's centre. (puppeteer's ElementHandle.click first
   * waits for an IntersectionObserver, which in headless Firefox took 2 s, then 4, 8, 16...
   * per click once a <dialog> had been shown.)
   */
  async click() {
    const el = await this.#element();
    try {
      const { x, y } = await el.evaluate((e) => {
        e.scrollIntoView({ block: "center", inline: "center" });
        const r = e.getBoundingClientRect();
        return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
      });
      await this.page.mouse.click(x, y);
    } finally {
      await el.dispose();
    }
  }

  /** Replaces the field's text by typing `value` (as a person would), or clears it. */
  async fill(value) {
    const el = await this.#element();
    try {
      await el.evaluate((input) => {
        input.focus();
        input.select();
      });
      if (value === "") await this.page.keyboard.press("Backspace");
      else await this.page.keyboard.type(value);
    } finally {
      await el.dispose();
    }
  }

  async check() {
    if (!(await this.isChecked())) await this.click();
  }

  async count() {
    return this.#eval((els) => els.length);
  }

  async isVisible() {
    return this.#eval((els, _, vis) => els.some(vis));
  }

  /** Reads from the first match, waiting for one to exist. */
  async #read(fn) {
    await this.waitFor({ state: "attached" });
    return this.#eval(fn);
  }

  textContent() {
    return this.#read((els) => els[0].textContent);
  }

  inputValue() {
    return this.#read((els) => els[0].value);
  }

  isChecked() {
    return this.#read((els) => els[0].checked);
  }

  isEnabled() {
    return this.#read((els) => !els[0].disabled);
  }
}

/**
 * One person's tab: its own browser context (own storage), a viewport, and the console
 * errors and page errors it produced. `allow` lists regexes of errors the test expects
 * (e.g. the 404 of a bad room code's token request).
 */
export class Person {
  static async open(browser, label, { viewport = LAPTOP, isMobile = false } = {}) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.setDefaultNavigationTimeout(15_000);
    await page.setViewport({ ...viewport, isMobile, hasTouch: isMobile, deviceScaleFactor: 1 });
    return new Person(`${label}`, browser.label, context, page);
  }

  constructor(label, browserName, context, page) {
    this.label = label;
    this.browserName = browserName;
    this.context = context;
    this.page = page;
    this.problems = [];
    this.allowed = [];
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      // Matched with the URL it came from: Chromium's "Failed to load resource" names none.
      const line = `${msg.text()} (${msg.location()?.url ?? ""})`;
      if (this.allowed.some((re) => re.test(line))) return;
      this.problems.push(`console.error: ${line}`);
    });
    page.on("pageerror", (err) => {
      // Firefox reports a refused WebSocket as a script error, not as a console message.
      if (this.allowed.some((re) => re.test(err.message ?? ""))) return;
      this.problems.push(`pageerror: ${err.stack ?? err.message ?? err}`);
    });
    page.on("error", (err) => this.problems.push(`page crashed: ${err.message}`));
  }

  /** Errors matching `re` are expected from now on (e.g. an HTTP 404 the app handles, a refused WebSocket). */
  allow(re) {
    this.allowed.push(re);
  }

  locator(css) {
    return new Locator(this.page, [{ css }], 10_000);
  }

  byTestId(id) {
    return new Locator(this.page, [], 10_000).getByTestId(id);
  }

  /** Opens the demo app (www/) at `origin`, with `?code=` when given, and waits until it is ready. */
  async goto(origin, code) {
    const url = code === undefined ? `${origin}/` : `${origin}/?code=${encodeURIComponent(code)}`;
    await this.page.goto(url);
    // app.js sets data-ready once the SDK module is loaded and init() has resolved.
    try {
      await this.locator("body[data-ready=true]").waitFor({ state: "attached", timeout: 15_000 });
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
    return this.page.$$eval("[data-testid=peer]", (items) =>
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
      await sleep(50);
    }
    throw new Error(`${this.label}: peer list is ${JSON.stringify(got)}, wanted ${JSON.stringify(want)} within ${timeout} ms`);
  }

  peerRow(name) {
    return this.byTestId("peer").filterByTestIdText("peer-name", name);
  }

  async endedMessage() {
    await this.byTestId("ended-screen").waitFor({ state: "visible" });
    return (await this.byTestId("ended-message").textContent()).trim();
  }

  /** Saves a full-page screenshot as tests/artifacts/e2e/<browser>/<name>.png. */
  async screenshot(name) {
    const dir = join(ARTIFACTS, this.browserName);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${name}.png`);
    await withTimeout(this.page.screenshot({ path: file, fullPage: true }), 15_000, `${this.label}'s screenshot`);
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

/**
 * Runs `body(open)`, where `open(label, opts)` opens a person's tab in `browser`; then
 * fails on any console or page error they collected. On failure, saves each tab's screen
 * (FAILED-<name>-<label>.png) and puts the server's log tail in the test's diagnostics.
 * The tabs are closed either way.
 */
export async function withPeople(t, browser, server, name, body) {
  const people = [];
  const open = async (label, opts) => {
    const person = await Person.open(browser, label, opts);
    people.push(person);
    return person;
  };
  try {
    const result = await body(open);
    assertNoPageProblems(people);
    return result;
  } catch (err) {
    for (const p of people) await p.screenshot(`FAILED-${name.replace(/\W+/g, "-")}-${p.label}`).catch(() => {});
    t.diagnostic(`server log tail:\n${server?.logText() ?? "(no server)"}`);
    throw err;
  } finally {
    await Promise.all(people.map((p) => p.close().catch(() => {})));
  }
}

/**
 * Runs `body(server, vite)` with a fresh room server and a Vite dev server (startViteDev's
 * `bin`, `cwd`, `root`); on failure the test's diagnostics get Vite's output. Both stop.
 */
export async function withDevServers(t, { bin, cwd, root }, body) {
  const server = await Server.start();
  try {
    const vite = await startViteDev(bin, cwd, root);
    try {
      return await body(server, vite);
    } catch (err) {
      t.diagnostic(`vite output:\n${vite.output.join("").slice(-3000)}`);
      throw err;
    } finally {
      await vite.stop();
    }
  } finally {
    await server.stop();
  }
}

/** Fails with every console error and page error any of `people` collected. */
export function assertNoPageProblems(people) {
  const problems = people.flatMap((p) => p.problems.map((m) => `[${p.label}] ${m}`));
  if (problems.length > 0) throw new Error(`the pages reported errors:\n${problems.join("\n")}`);
}

// The npm package under each toolchain, unchanged and with no wasm plugin or config:
// tests/package/app (a dozen lines on `import init, { HmsClient } from "hms-client"`) as
// built by tests/package/build.mjs (Vite 8, Vite 6, esbuild, Rollup, and no build at all:
// an import map), and served by the dev servers of Vite 8 and Vite 6 (whose dependency
// optimizer broke the .wasm URL: vitejs/vite#8427). In Chromium and Firefox, against the
// real server, each one:
//   - throws HmsError 9002 NotInitialized for new HmsClient() before init();
//   - joins as host with a room code and ends the room with a lock; the guest is then
//     refused with 423 RoomLocked;
//   - loads the WebAssembly the way the package means it to for that toolchain (the .wasm
//     file where the bundler emitted it, the inline copy where it did not).
// What each page downloaded (gzip -9 of the files it fetched) is written to
// tests/artifacts/e2e/toolchains.json; README.md's and pkg/README.md's figures come from it.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import {
  ARTIFACTS, BROWSERS, LAPTOP, REPO, Server, closeBrowser, freshRoomId, launchBrowser, withDevServers, withPeople,
} from "./harness.mjs";

const PACKAGE_TESTS = join(REPO, "tests", "package");
const DIST = join(PACKAGE_TESTS, "dist");
const INSTALLED = join(PACKAGE_TESTS, "node_modules", "hms-client");

/**
 * Each toolchain and how its page must get the WebAssembly: "wasm" = it fetches a .wasm
 * file and never the inline copy; "inline" = no .wasm request, the bytes are in the JS;
 * "fallback" = the .wasm request fails (the bundler did not emit the file) and the inline
 * chunk is fetched after it.
 */
const BUILT = [
  { name: "plain", dir: "plain", wasm: "wasm" },
  { name: "vite8-build", dir: "vite", wasm: "wasm" },
  { name: "vite6-build", dir: "vite6", wasm: "wasm" },
  { name: "esbuild", dir: "esbuild", wasm: "inline" },
  { name: "rollup", dir: "rollup", wasm: "fallback" },
];
const DEV = [
  { name: "vite8-dev", bin: join(PACKAGE_TESTS, "node_modules", "vite", "bin", "vite.js"), wasm: "wasm" },
  // Vite 6's optimizer moves the package to .vite/deps/ without its .wasm; the dev server
  // answers that URL with its HTML page.
  { name: "vite6-dev", bin: join(PACKAGE_TESTS, "node_modules", "vite-6", "bin", "vite.js"), wasm: "fallback" },
];

/** Opens the app at `origin` with `params`, waits for its result, returns what it reported. */
async function runApp(person, origin, params) {
  await person.page.goto(`${origin}/?${new URLSearchParams(params)}`);
  await person.locator("body[data-result]").waitFor({ state: "attached", timeout: 20_000 });
  const data = await person.page.evaluate(() => ({ ...document.body.dataset }));
  const resources = await person.page.evaluate(() =>
    performance.getEntriesByType("resource").map((e) => ({ url: e.name, status: e.responseStatus })));
  return { data, resources };
}

/** The same-origin paths a page fetched that carry the SDK: .wasm files and JS chunks. */
function sdkRequests(resources, origin) {
  return resources.filter((r) => r.url.startsWith(origin)).map((r) => new URL(r.url).pathname);
}

/** Checks that the page got the WebAssembly the way `how` says (see BUILT). */
function assertWasmSource(how, paths) {
  const wasm = paths.filter((p) => p.endsWith(".wasm"));
  const inline = paths.filter((p) => p.includes("hms_client_bg_inline"));
  if (how === "wasm") {
    assert.equal(wasm.length, 1, `one .wasm fetched: ${paths}`);
    assert.equal(inline.length, 0, `no inline chunk fetched: ${paths}`);
  } else if (how === "inline") {
    assert.equal(wasm.length, 0, `no .wasm requested: ${paths}`);
  } else {
    assert.equal(wasm.length, 1, `the .wasm tried first: ${paths}`);
    assert.equal(inline.length, 1, `then the inline chunk: ${paths}`);
  }
}

/** gzip -9 size of what the page fetched from `dist` (and /pkg/ from the installed package). */
function fetchedGzip(paths, dist) {
  let total = 0;
  const files = [];
  for (const p of new Set(["/index.html", ...paths])) {
    const file = p.startsWith("/pkg/") ? join(INSTALLED, p.slice(5)) : join(dist, p === "/" ? "index.html" : p.slice(1));
    if (!existsSync(file)) continue; // a request the server answered 404 (the rollup fallback)
    const gz = gzipSync(readFileSync(file), { level: 9 }).length;
    files.push({ path: p, gzip: gz });
    total += gz;
  }
  return { total, files };
}

const results = [];

for (const browserName of BROWSERS) describe(`the package under each toolchain in ${browserName}`, { timeout: 600_000 }, () => {
  let browser;
  before(async () => {
    assert.ok(existsSync(DIST) && existsSync(INSTALLED), "tests/package is not built: run scripts/package-tests.sh");
    browser = await launchBrowser(browserName);
  });
  after(() => closeBrowser(browser));

  /** Host joins and ends with a lock; a guest is refused; returns the host's page report. */
  function endToEnd(t, label, server, appOrigin) {
    return withPeople(t, browser, server, `toolchain-${label}`, async (open) => {
      const codes = await server.roomCodes(freshRoomId(label));
      const host = await open("host", { viewport: LAPTOP });
      const guest = await open("guest", { viewport: LAPTOP });
      // The locked room's refusal is the expected answer; Rollup's missing .wasm is the
      // expected first try of the package's fallback.
      guest.allow(/\b423\b/);
      for (const p of [host, guest]) p.allow(/404.*hms_client_bg\.wasm/);
      const hosted = await runApp(host, appOrigin, { ws: server.wsEndpoint, code: codes.host, end: "1" });
      assert.equal(hosted.data.beforeInit, "HmsError 9002 NotInitialized instanceof Error=true");
      assert.equal(hosted.data.result, "ok", `host: ${hosted.data.result}`);
      assert.equal(hosted.data.role, "host");
      assert.equal(hosted.data.ended, "yes");
      await host.screenshot(`toolchain-${label}-host`);
      const guested = await runApp(guest, appOrigin, { ws: server.wsEndpoint, code: codes.guest });
      assert.equal(guested.data.result, "HmsError 423 RoomLocked");
      await guest.screenshot(`toolchain-${label}-guest-refused`);
      return hosted;
    });
  }

  for (const tc of BUILT) {
    test(`${tc.name}: init, NotInitialized before it, join, end with lock, rejoin refused`, { timeout: 90_000 }, async (t) => {
      const dist = join(DIST, tc.dir);
      const server = await Server.start({ www: dist, pkg: INSTALLED });
      try {
        const { resources } = await endToEnd(t, tc.name, server, server.origin);
        const paths = sdkRequests(resources, server.origin);
        assertWasmSource(tc.wasm, paths);
        results.push({ browser: browserName, toolchain: tc.name, wasm: tc.wasm, fetched: fetchedGzip(paths, dist) });
      } finally {
        await server.stop();
      }
    });
  }

  for (const tc of DEV) {
    test(`${tc.name}: the dev server serves a working app, no config`, { timeout: 120_000 }, async (t) => {
      await withDevServers(t, { bin: tc.bin, cwd: PACKAGE_TESTS, root: "app" }, async (server, vite) => {
        const { resources } = await endToEnd(t, tc.name, server, vite.origin);
        const paths = sdkRequests(resources, vite.origin);
        assertWasmSource(tc.wasm, paths);
        results.push({ browser: browserName, toolchain: tc.name, wasm: tc.wasm, requests: paths.filter((p) => /hms|\.wasm/.test(p)) });
      });
    });
  }
});

after(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  await writeFile(join(ARTIFACTS, "toolchains.json"), `${JSON.stringify(results, null, 2)}\n`);
});

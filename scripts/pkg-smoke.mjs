// Smoke test of the built package in V8 (node), run by scripts/build-pkg.sh once per entry:
//
//   node scripts/pkg-smoke.mjs pkg/index.js     # fetch of a file: URL fails in node: inline fallback
//   node scripts/pkg-smoke.mjs pkg/inline.js
//
// Before init(): new HmsClient throws an HmsError NotInitialized (a real Error) with the
// fields of the SDK's own errors. After init(): a client is made, and a call that needs a
// connection rejects with an HmsError 6000 NotConnected. Exits non-zero with what went wrong.

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const entry = process.argv[2];
if (!entry) {
  console.error("usage: node scripts/pkg-smoke.mjs ENTRY.js");
  process.exit(2);
}
const m = await import(pathToFileURL(resolve(entry)).href);
const problems = [];
const check = (ok, what) => ok || problems.push(what);

let early;
try {
  new m.HmsClient({ endpoint: "ws://127.0.0.1:9/ws" });
} catch (e) {
  early = e;
}
check(early instanceof m.HmsError && early instanceof Error, `before init(): not an HmsError but ${early}`);
check(early?.name === "NotInitialized" && Number.isInteger(early?.code), `before init(): name ${early?.name}, code ${early?.code}`);

await Promise.all([m.default(), m.default()]); // concurrent calls share one load
const c = new m.HmsClient({ endpoint: "ws://127.0.0.1:9/ws", requestTimeoutMs: 1000 });
let err;
try {
  await c.endRoom(false, "x");
} catch (e) {
  err = e;
}
check(err instanceof m.HmsError && err instanceof Error && err.code === 6000 && err.name === "NotConnected",
  `endRoom before join: ${err?.name} ${err?.code}`);
// The entry makes NotInitialized itself (pkg/loader.js): it must carry the same fields
// as the errors the SDK makes (their values: tests/package_entry.rs).
const fields = (e) => Object.keys(e ?? {}).sort().join(",");
check(fields(early) === fields(err), `NotInitialized has the fields ${fields(early)}, the SDK's errors ${fields(err)}`);
check(c.getLocalPeer() === undefined && Array.isArray(c.getPeers()) && typeof c.onPeerJoin(() => {}) === "function",
  "getLocalPeer/getPeers/onPeerJoin");
c.free();

if (problems.length) {
  console.error(`${entry} smoke test failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`${entry} smoke test: NotInitialized HmsError ${early.code} before init(); after it, HmsError 6000 NotConnected`);

#!/usr/bin/env bash
# Builds the npm package: `wasm-pack build --release --target web` into pkg/ and
# `--target bundler` into pkg-bundler/, optimizes both .wasm files with wasm-opt -Oz,
# checks that pkg/ loads and works (node: init, new HmsClient, an HmsError rejection),
# then checks the size budget: the .wasm plus the JS glue of pkg/, gzipped together
# (-9), must stay under 40 KB (40*1024 bytes). Exits non-zero on any failure.
#
# wasm-opt: Debian's binaryen 108 corrupts wasm-bindgen's externref table, so wasm-pack's
# own wasm-opt step is off (Cargo.toml) and a wasm-opt >= 116 is used here: the one on
# PATH if recent enough, else npm's `binaryen` package installed into target/npm-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
BUDGET=$((40 * 1024))
BINARYEN_NPM=binaryen@132.0.0

wasm_opt=""
if command -v wasm-opt >/dev/null; then
  v=$(wasm-opt --version | grep -oE '[0-9]+' | head -1)
  if [ "${v:-0}" -ge 116 ]; then wasm_opt=$(command -v wasm-opt); fi
fi
if [ -z "$wasm_opt" ]; then
  wasm_opt=target/npm-tools/node_modules/.bin/wasm-opt
  if [ ! -x "$wasm_opt" ]; then
    echo "installing $BINARYEN_NPM (wasm-opt) into target/npm-tools"
    mkdir -p target/npm-tools
    npm install --no-audit --no-fund --no-save --loglevel=error --prefix target/npm-tools "$BINARYEN_NPM"
  fi
fi
echo "wasm-opt: $wasm_opt ($("$wasm_opt" --version))"

for target in web bundler; do
  out=pkg; [ "$target" = bundler ] && out=pkg-bundler
  wasm-pack build --release --target "$target" --out-dir "$out" --out-name hms_client
  "$wasm_opt" -Oz "$out/hms_client_bg.wasm" -o "$out/hms_client_bg.wasm.opt"
  mv "$out/hms_client_bg.wasm.opt" "$out/hms_client_bg.wasm"
done

# Smoke test of the optimized package in V8 (node): it must load and behave.
node --input-type=module -e '
import fs from "fs";
const m = await import(process.cwd() + "/pkg/hms_client.js");
m.initSync({ module: fs.readFileSync("pkg/hms_client_bg.wasm") });
const c = new m.HmsClient({ endpoint: "ws://127.0.0.1:9/ws", requestTimeoutMs: 1000 });
let err;
try { await c.endRoom(false, "x"); } catch (e) { err = e; }
const ok = err instanceof m.HmsError && err instanceof Error && err.code === 6000 && err.name === "NotConnected"
  && c.getLocalPeer() === undefined && Array.isArray(c.getPeers()) && typeof c.onPeerJoin(() => {}) === "function";
c.free();
if (!ok) { console.error("pkg/ smoke test failed:", err); process.exit(1); }
console.log("pkg/ smoke test: loads, HmsError instanceof Error, code 6000 NotConnected");
'

wasm=$(gzip -9 -c pkg/hms_client_bg.wasm | wc -c)
glue=$(gzip -9 -c pkg/hms_client.js | wc -c)
both=$(cat pkg/hms_client_bg.wasm pkg/hms_client.js | gzip -9 | wc -c)
raw=$(stat -c %s pkg/hms_client_bg.wasm)
echo "pkg/ size: hms_client_bg.wasm ${raw} B raw, ${wasm} B gzip; hms_client.js ${glue} B gzip"
echo "pkg/ .wasm + JS glue gzipped together: ${both} B ($((both * 100 / BUDGET))% of the ${BUDGET} B budget)"
if [ "$both" -ge "$BUDGET" ]; then
  echo "FAIL: over the 40 KB gzip budget" >&2
  exit 1
fi

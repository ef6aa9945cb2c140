#!/usr/bin/env bash
# Builds the npm package: `wasm-pack build --release --target web` into pkg/ and
# `--target bundler` into pkg-bundler/, optimizes both .wasm files with wasm-opt -Oz,
# checks that pkg/ loads and works (node: init, new HmsClient, an HmsError rejection),
# then checks the size budget: the .wasm plus the JS glue of pkg/, gzipped together
# (-9), must stay at or under 44 KB (45,056 bytes); the figure is printed. Exits
# non-zero on any failure.
#
# The web target's JS glue is minified with esbuild (npm), like the bundles of the peers
# that the benchmarks compare with.
#
# wasm-opt: Debian's binaryen 108 corrupts wasm-bindgen's externref table, so wasm-pack's
# own wasm-opt step is off (Cargo.toml) and a wasm-opt >= 116 is used here: the one on
# PATH if recent enough, else npm's `binaryen` package installed into target/npm-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
BUDGET=$((44 * 1024))
BINARYEN_NPM=binaryen@132.0.0

# Build tools from npm, pinned, installed once into target/npm-tools.
ESBUILD_NPM=esbuild@0.28.2
npm_tool() { # npm_tool PACKAGE@VERSION BIN -> path of BIN, installing PACKAGE if missing
  # One prefix per tool: `npm install --no-save` prunes whatever else a prefix holds.
  local dir=target/npm-tools/${1%@*}
  local bin=$dir/node_modules/.bin/$2
  if [ ! -x "$bin" ] || ! grep -q "\"version\": \"${1##*@}\"" "$dir/node_modules/${1%@*}/package.json" 2>/dev/null; then
    echo "installing $1 into $dir" >&2
    mkdir -p "$dir"
    npm install --no-audit --no-fund --no-save --loglevel=error --prefix "$dir" "$1" >&2
  fi
  echo "$bin"
}

wasm_opt=""
if command -v wasm-opt >/dev/null; then
  v=$(wasm-opt --version | grep -oE '[0-9]+' | head -1)
  if [ "${v:-0}" -ge 116 ]; then wasm_opt=$(command -v wasm-opt); fi
fi
[ -n "$wasm_opt" ] || wasm_opt=$(npm_tool "$BINARYEN_NPM" wasm-opt)
esbuild=$(npm_tool "$ESBUILD_NPM" esbuild)
echo "wasm-opt: $wasm_opt ($("$wasm_opt" --version))"

for target in web bundler; do
  out=pkg; [ "$target" = bundler ] && out=pkg-bundler
  wasm-pack build --release --target "$target" --out-dir "$out" --out-name hms_client
  "$wasm_opt" -Oz "$out/hms_client_bg.wasm" -o "$out/hms_client_bg.wasm.opt"
  mv "$out/hms_client_bg.wasm.opt" "$out/hms_client_bg.wasm"
done

# The web target's glue ships minified, as the peers' bundles are measured; exports keep
# their names and the first-line types pointer for Deno/JSR is kept.
"$esbuild" pkg/hms_client.js --minify --format=esm --target=es2020 --log-level=warning \
  --banner:js='/* @ts-self-types="./hms_client.d.ts" */' --outfile=pkg/hms_client.min.js
mv pkg/hms_client.min.js pkg/hms_client.js

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
if [ "$both" -gt "$BUDGET" ]; then
  echo "FAIL: ${both} B is over the 44 KB (${BUDGET} B) gzip budget" >&2
  exit 1
fi

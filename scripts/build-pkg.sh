#!/usr/bin/env bash
# Builds the npm package `hms-client` in pkg/. pkg/ holds the package's hand-written files
# (package.json, README.md, LICENSE-*, the entries index.js / inline.js / loader.js and
# their .d.ts); this script generates the rest around them (git-ignored):
#   1. `wasm-pack build --release --target web` into target/wasm-pack/;
#   2. wasm-opt -Oz of the .wasm into pkg/hms_client_bg.wasm, the JS glue minified by
#      esbuild into pkg/hms_client.js;
#   3. scripts/assemble-pkg.mjs: pkg/hms_client.d.ts (made valid for strict TypeScript
#      without the esnext lib), pkg/hms_client_bg_inline.js (the .wasm as base64, for the
#      inline entry), and a check that pkg/package.json agrees with Cargo.toml;
#   4. smoke tests of both entries in node (scripts/pkg-smoke.mjs);
#   5. the size budget: the .wasm plus the JS glue of pkg/, gzipped together (-9), must
#      stay at or under 44 KB (45,056 bytes); the figure is printed;
#   6. `npm pack` into target/npm/hms-client-VERSION.tgz (what the examples and the e2e
#      tests install), its file list checked, and `npm publish --dry-run` (no warnings).
# Exits non-zero on any failure.
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

# wasm-pack writes a package.json, README.md and .gitignore of its own into its out dir,
# so it builds into target/ and only the generated code is copied into pkg/.
out=target/wasm-pack
rm -rf "$out" pkg-bundler   # pkg-bundler/: the second package earlier builds made
wasm-pack build --release --target web --out-dir "$out" --out-name hms_client
"$wasm_opt" -Oz --converge --low-memory-unused --strip-producers --strip-target-features "$out/hms_client_bg.wasm" -o pkg/hms_client_bg.wasm
# The imports' names without wasm-bindgen's hashes, in the .wasm and the glue alike (-2.1 KB gzip).
node scripts/short-imports.mjs pkg/hms_client_bg.wasm "$out/hms_client.js"

# The web target's glue ships minified, as the peers' bundles are measured; exports keep
# their names and the first-line types pointer for Deno/JSR is kept.
"$esbuild" "$out/hms_client.js" --minify --format=esm --target=es2020 --log-level=warning \
  --banner:js='/* @ts-self-types="./hms_client.d.ts" */' --outfile=pkg/hms_client.js

node scripts/assemble-pkg.mjs "$out" pkg
node scripts/pkg-smoke.mjs pkg/inline.js
node scripts/pkg-smoke.mjs pkg/index.js

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

# What the inline copy costs those whose toolchain does not emit the .wasm (pkg/README.md,
# "Bundlers"): its JS module against the .wasm file, each gzipped (-9).
inline=$(gzip -9 -c pkg/hms_client_bg_inline.js | wc -c)
echo "inline copy: hms_client_bg_inline.js ${inline} B gzip, ${wasm} B as .wasm: +$((inline - wasm)) B where it is used"

# The tarball npm would publish: exactly the files package.json lists plus the two npm
# always adds (package.json, README.md), and a publish rehearsal that must not warn about
# the package (only the rehearsal's own "requires you to be logged in" may appear).
rm -rf target/npm && mkdir -p target/npm
(cd pkg && npm pack --json --pack-destination ../target/npm --loglevel=error) > target/npm/pack.json
node --input-type=module -e '
import fs from "fs";
const [packed] = JSON.parse(fs.readFileSync("target/npm/pack.json", "utf8"));
const manifest = JSON.parse(fs.readFileSync("pkg/package.json", "utf8"));
const want = [...manifest.files, "package.json", "README.md"].sort();
const got = packed.files.map((f) => f.path).sort();
if (JSON.stringify(got) !== JSON.stringify(want)) {
  console.error(`npm pack: files differ\n  got:  ${got.join(" ")}\n  want: ${want.join(" ")}`);
  process.exit(1);
}
console.log(`npm pack: target/npm/${packed.filename}, ${got.length} files, ${packed.size} B packed, ${packed.unpackedSize} B unpacked`);
'
publish=$(cd pkg && npm publish --dry-run 2>&1) || { echo "$publish" >&2; echo "FAIL: npm publish --dry-run" >&2; exit 1; }
if echo "$publish" | grep -i "warn" | grep -vq "requires you to be logged in"; then
  echo "$publish" | grep -i "warn" >&2
  echo "FAIL: npm publish --dry-run warns about the package" >&2
  exit 1
fi
echo "npm publish --dry-run: clean"

#!/usr/bin/env bash
# Builds the npm package: `wasm-pack build --release --target web` into pkg/ and
# `--target bundler` into pkg-bundler/, then checks the size budget: the .wasm plus the
# JS glue of pkg/, gzipped together (-9), must stay under 40 KB (40*1024 bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
BUDGET=$((40 * 1024))

wasm-pack build --release --target web --out-dir pkg --out-name hms_client
wasm-pack build --release --target bundler --out-dir pkg-bundler --out-name hms_client

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

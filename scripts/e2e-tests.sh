#!/usr/bin/env bash
# End-to-end tests: tests/e2e/*.test.mjs under Node's test runner, driving Debian's
# Chromium and Firefox ESR with puppeteer-core against the real hms-server (started by the
# tests on 127.0.0.1:0 with a temp data dir):
#   demo, reconnect   the demo app (www/) on pkg/ (issue 4)
#   toolchains        the package built by Vite 8 / Vite 6 / esbuild / Rollup, and none
#   examples          examples/vite-ts, examples/react, examples/webpack
#   production        docs/PRODUCTION.md's token minting (Node and Python) against the server
# E2E_BROWSERS=chromium (or firefox) runs one browser only. Installs the npm deps when
# missing; builds pkg/ and the package tests' builds (scripts/package-tests.sh) when
# missing, and the server always (a no-op when it is up to date). Screenshots:
# tests/artifacts/e2e/<browser>/. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ ! -d tests/e2e/node_modules/puppeteer-core ]; then
  echo "e2e: npm ci in tests/e2e"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -f pkg/hms_client.js ] || [ ! -f pkg/hms_client_bg.wasm ]; then
  echo "e2e: pkg/ is missing; building it (scripts/build-pkg.sh)"
  bash scripts/build-pkg.sh
fi
for built in tests/package/dist examples/vite-ts/dist examples/react/dist examples/webpack/dist; do
  if [ ! -d "$built" ]; then
    echo "e2e: $built is missing; building (scripts/package-tests.sh)"
    bash scripts/package-tests.sh
    break
  fi
done
cargo build --quiet -p hms-server
export HMS_SERVER_BIN="$PWD/target/debug/hms-server"

rm -rf tests/artifacts/e2e
mkdir -p tests/artifacts/e2e
cd tests/e2e
# One file at a time, one browser at a time: the tests share the machine's 2 cores.
# A hard outer timeout, so that nothing can hang the test command (each wait has its own).
timeout --kill-after=10 1500 node --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs

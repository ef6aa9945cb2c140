#!/usr/bin/env bash
# End-to-end tests of the demo app (issue 4): tests/e2e/*.test.mjs under Node's test runner,
# driving Debian's /usr/bin/chromium with playwright-core against the real hms-server
# (started by the tests on 127.0.0.1:0 with a temp data dir) serving www/ and pkg/.
# Installs the npm deps when missing, builds pkg/ when missing and the dev server always
# (a no-op when it is up to date). Screenshots: tests/artifacts/e2e/. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  echo "e2e: npm ci in tests/e2e"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -f pkg/hms_client.js ] || [ ! -f pkg/hms_client_bg.wasm ]; then
  echo "e2e: pkg/ is missing; building it (scripts/build-pkg.sh)"
  bash scripts/build-pkg.sh
fi
cargo build --quiet -p hms-server
export HMS_SERVER_BIN="$PWD/target/debug/hms-server"

rm -rf tests/artifacts/e2e
mkdir -p tests/artifacts/e2e
cd tests/e2e
# One file at a time: the tests share the machine's 2 cores with each other's browsers.
# A hard outer timeout, so that nothing can hang the test command (each wait has its own).
timeout --kill-after=10 600 node --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs

#!/usr/bin/env bash
# The one test command (README.md; .ci/run calls exactly this). Installs whatever is
# missing (scripts/setup.sh), then runs every suite, even after one fails, and ends with
# a summary line. Exits non-zero when any suite failed.
#
#   native    cargo test --workspace: protocol, server integration tests (real server
#             binary over real sockets, real SQLite files), SDK pure logic
#   package   wasm-pack release build of pkg/, its 44 KB gzip size budget, npm pack and a
#             publish rehearsal (target/npm/hms-client-VERSION.tgz)
#   toolchains the tarball installed as users do: tsc --strict under lib es2022 and
#             esnext; an app built by Vite 8, Vite 6, esbuild and Rollup; examples/ built
#   chrome    SDK browser tests (wasm-bindgen-test) in headless Chromium vs the real server
#   firefox   the same in headless Firefox ESR
#   e2e       in headless Chromium and Firefox vs the real server: the demo app, the
#             toolchain builds and Vite dev servers, the examples, docs/PRODUCTION.md
#   load      small runs of the load tool: every peer of every ended room told exactly once,
#             then again with webhooks on (every event delivered once, signed, in order)
#   proxy     docs/PRODUCTION.md's nginx and Caddy snippets in front of the real server
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

bash scripts/setup.sh || { echo "setup failed"; exit 1; }

passed=() failed=()
suite() {
  local name=$1; shift
  echo
  echo "=== suite $name: $*"
  local start=$SECONDS
  if "$@"; then passed+=("$name"); echo "=== suite $name passed ($((SECONDS - start)) s)"
  else failed+=("$name"); echo "=== suite $name FAILED ($((SECONDS - start)) s)"; fi
}

suite native cargo test --workspace --locked
suite package bash scripts/build-pkg.sh
suite toolchains bash scripts/package-tests.sh
suite chrome bash scripts/browser-tests.sh chrome
suite firefox bash scripts/browser-tests.sh firefox
suite e2e bash scripts/e2e-tests.sh
suite load bash scripts/load-smoke.sh
suite proxy bash scripts/proxy-tests.sh

echo
echo "passed suites: ${passed[*]:-none}"
echo "failed suites: ${failed[*]:-none}"
echo "suites: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]

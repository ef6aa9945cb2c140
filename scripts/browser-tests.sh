#!/usr/bin/env bash
# The SDK's browser tests (tests/browser.rs, wasm-bindgen-test) in headless Chromium
# and/or Firefox ESR against the REAL room server, plus the tiny mock server
# (tests/mock-server/mock.js) for the faults the real one won't produce on demand.
#
#   scripts/browser-tests.sh [chrome|firefox|all]     (default: all)
#
# Builds hms-server (dev profile), starts it on 127.0.0.1:0 with a temp data dir and a
# random HMS_SECRET, mints a management token with the same secret,
# starts the mock (which also runs a second, restartable hms-server for the reconnect
# tests), hands the URLs and token to the tests at compile time (option_env!), runs
# `wasm-pack test --headless` once per browser, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
which_browsers=${1:-all}
case "$which_browsers" in chrome|firefox|all) ;; *) echo "usage: $0 [chrome|firefox|all]" >&2; exit 2 ;; esac

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Reads `<prefix>HOST:PORT` from a process's stdout file, with a deadline.
wait_line() {
  local file=$1 name=$2 prefix=$3
  for _ in $(seq 1 300); do
    if line=$(grep -m1 "^$prefix" "$file" 2>/dev/null); then echo "${line#"$prefix"}"; return 0; fi
    sleep 0.1
  done
  echo "$name did not start; its output:" >&2; cat "$file" >&2; return 1
}
wait_listening() { wait_line "$1" "$2" "listening on "; }

cargo build -p hms-server --quiet
server_bin=target/debug/hms-server
export HMS_SECRET
HMS_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

mkdir -p "$tmp/data"
"$server_bin" serve --addr 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/server.out" 2>"$tmp/server.log" &
pids+=($!)
addr=$(wait_listening "$tmp/server.out" hms-server)
mgmt=$("$server_bin" token --management --data-dir "$tmp/data")

# The mock also runs a second real server that the reconnect tests kill and restart.
mkdir -p "$tmp/data2"
node tests/mock-server/mock.js --server "$server_bin" --data-dir "$tmp/data2" --proxy-to "$addr" >"$tmp/mock.out" 2>"$tmp/mock.log" &
pids+=($!)
mock_addr=$(wait_listening "$tmp/mock.out" mock-server)
restart_addr=$(wait_line "$tmp/mock.out" "restartable hms-server" "restartable server on ")
proxy_addr=$(wait_line "$tmp/mock.out" "fault proxy" "proxy on ")

export HMS_TEST_HTTP="http://$addr"
export HMS_TEST_WS="ws://$addr/ws"
export HMS_TEST_MGMT="$mgmt"
export HMS_TEST_MOCK_WS="ws://$mock_addr"
export HMS_TEST_CONTROL="http://$mock_addr/control"
# The management REST API answers no CORS: the test page reaches it through the mock.
export HMS_TEST_RELAY="http://$mock_addr/relay"
export HMS_TEST_RESTART_HTTP="http://$restart_addr"
export HMS_TEST_RESTART_WS="ws://$restart_addr/ws"
export HMS_TEST_PROXY_WS="ws://$proxy_addr"
echo "browser tests: server $HMS_TEST_HTTP, mock $HMS_TEST_MOCK_WS"

status=0
run() {
  local name=$1; shift
  echo "=== browser tests in $name"
  if ! "$@" wasm-pack test --headless "--$name" -- --test browser; then
    echo "=== browser tests FAILED in $name" >&2
    status=1
  fi
}
if [ "$which_browsers" = chrome ] || [ "$which_browsers" = all ]; then
  run chrome env CHROMEDRIVER=/usr/bin/chromedriver
fi
if [ "$which_browsers" = firefox ] || [ "$which_browsers" = all ]; then
  run firefox env GECKODRIVER="$(command -v geckodriver)"
fi
if [ $status -ne 0 ]; then
  echo "--- server log (last 40 lines)" >&2; tail -40 "$tmp/server.log" >&2 || true
  echo "--- mock + restartable server log (last 40 lines)" >&2; tail -40 "$tmp/mock.log" >&2 || true
fi
exit $status

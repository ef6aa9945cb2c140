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
# tests), a redis-server and two nodes of a cluster over it (the cross-node test), hands
# the URLs and token to the tests at compile time (option_env!), runs
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

# Two nodes of a cluster sharing rooms through a Redis started here (Debian's
# redis-server on a free loopback port, its own temp dir, AOF with fsync always; stopped
# by PID): the cross-node test joins a host on one and a guest on the other.
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" --appendonly yes --appendfsync always \
  --save "" >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
node_addrs=()
for n in a b; do
  mkdir -p "$tmp/node-$n"
  "$server_bin" serve --addr 127.0.0.1:0 --data-dir "$tmp/node-$n" --redis "redis://127.0.0.1:$redis_port/0" \
    --node-id "$n" >"$tmp/node-$n.out" 2>"$tmp/node-$n.log" &
  pids+=($!)
  node_addrs+=("$(wait_listening "$tmp/node-$n.out" "hms-server node $n")")
done
export HMS_TEST_NODE_A_HTTP="http://${node_addrs[0]}" HMS_TEST_NODE_A_WS="ws://${node_addrs[0]}/ws"
export HMS_TEST_NODE_B_HTTP="http://${node_addrs[1]}" HMS_TEST_NODE_B_WS="ws://${node_addrs[1]}/ws"

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
echo "browser tests: server $HMS_TEST_HTTP, mock $HMS_TEST_MOCK_WS, cluster nodes $HMS_TEST_NODE_A_HTTP $HMS_TEST_NODE_B_HTTP"

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
  for n in a b; do echo "--- cluster node $n log (last 20 lines)" >&2; tail -20 "$tmp/node-$n.log" >&2 || true; done
fi
exit $status

#!/usr/bin/env bash
# The benchmark suite (issue 6), one command: builds the server (profile server-release)
# and the package (scripts/build-pkg.sh), then measures
#   1. payload: gzip of pkg/ beside @100mslive/hms-video-store and livekit-client
#      bundled + minified by esbuild               (bench/size.mjs)
#   2. latency in headless Chromium: wasm start-up, join, endRoom, last onRemovedFromRoom
#      for 10 and 100 guests, beside a bare WebSocket round trip   (bench/latency.mjs)
#   3. server scale with the load tool: peers held, joins/s, RSS per peer, end-room
#      fan-out for rooms of 1k and 10k peers        (hms-loadtest)
#   4. signaling with webhooks off and on (fast, slow, dead receiver), side by side
#                                                   (scripts/bench-webhooks.sh)
# and prints one table (metric | median | spread | comparison | ratio) with the machine.
# Figures of the run are kept in bench/results/<UTC time>/ (gitignored).
#
# Env: BENCH_TRIALS (15), BENCH_LOADS (10), BENCH_SKIP_BUILD=1 (reuse the builds),
#      BENCH_LOAD_RUNS ("10000:100 19000:190 1000:1 10000:1", peers:rooms per load run).
# Exits non-zero when any part failed or did not verify.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

TRIALS=${BENCH_TRIALS:-15}
LOADS=${BENCH_LOADS:-10}
LOAD_RUNS=${BENCH_LOAD_RUNS:-"10000:100 19000:190 1000:1 10000:1"}
OUT="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
SERVER=target/server-release/hms-server
LOADTOOL=target/server-release/hms-loadtest
failed=()

log() { printf '[bench] %s\n' "$*" >&2; }

bash scripts/setup.sh || { echo "bench: setup failed"; exit 1; }
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --profile server-release -p hms-server -p hms-loadtest"
  cargo build --quiet --profile server-release -p hms-server -p hms-loadtest || { echo "bench: server build failed"; exit 1; }
  log "scripts/build-pkg.sh"
  bash scripts/build-pkg.sh >"$OUT/build-pkg.log" 2>&1 || { cat "$OUT/build-pkg.log"; echo "bench: package build failed"; exit 1; }
fi
if [ ! -d bench/node_modules ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  log "npm ci in bench"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error) || { echo "bench: npm ci failed"; exit 1; }
fi

# Other processes share these cores: record how busy the machine was as measuring began.
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "payload (bench/size.mjs)"
node bench/size.mjs --pkg pkg --json "$OUT/size.json" | tee "$OUT/size.txt" >&2 || failed+=(size)

log "latency in headless Chromium (bench/latency.mjs, $TRIALS trials, $LOADS loads)"
node bench/latency.mjs --server-bin "$SERVER" --pkg pkg --trials "$TRIALS" --loads "$LOADS" \
  --json "$OUT/latency.json" | tee "$OUT/latency.txt" >&2 || failed+=(latency)

i=0
for run in $LOAD_RUNS; do
  i=$((i + 1))
  peers=${run%%:*} rooms=${run##*:}
  log "load: $peers peers in $rooms rooms"
  timeout --kill-after=10 400 "$LOADTOOL" --server-bin "$SERVER" --peers "$peers" --rooms "$rooms" \
    --timeout-s 360 --json "$OUT/load-$i-${peers}p-${rooms}r.json" | tee "$OUT/load-$i.txt" >&2 \
    || failed+=("load-$peers/$rooms")
done

log "webhooks off and on (scripts/bench-webhooks.sh)"
BENCH_SKIP_BUILD=1 WEBHOOK_BENCH_OUT="$OUT/webhooks" bash scripts/bench-webhooks.sh >&2 || failed+=(webhooks)

{
  echo "## hms-client benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
  echo
  echo "load average (1/5/15 min) as measuring began: $LOADAVG_START (other processes share these cores)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
  echo "tools: $(rustc --version), node $(node --version), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  echo "command: bash scripts/bench.sh  (BENCH_TRIALS=$TRIALS BENCH_LOADS=$LOADS BENCH_LOAD_RUNS=\"$LOAD_RUNS\")"
  echo
  node bench/report.mjs "$OUT"
  echo
  grep -h -E '^size (goal|budget)' "$OUT/size.txt" 2>/dev/null || true
  echo
  cat "$OUT/webhooks/table.md" 2>/dev/null || true
  if [ ${#failed[@]} -gt 0 ]; then echo "FAILED parts: ${failed[*]}"; else echo "all parts ran and verified"; fi
} | tee "$OUT/table.md"
[ ${#failed[@]} -eq 0 ]

#!/usr/bin/env bash
# Signaling with webhooks off and on, side by side (issue 15): the load tool runs the same
# load (default 10,000 peers in 100 rooms, every room ended at once) against a server
# started with webhooks
#   off   none
#   fast  to a receiver that answers at once (every event verified: signed, once, in order
#         per room; the end-rooms' burst of events timed)
#   slow  to a receiver that takes --webhook-slow-ms (1 s) to answer
#   down  to a port nobody listens on (every delivery refused and retried)
# in rounds (off, fast, slow, down, off, ...), so that drift on a shared machine hits every
# mode alike, and prints one table: per mode the median of the rounds and the range.
#
# Env: WEBHOOK_BENCH_LOAD (10000:100 = peers:rooms), WEBHOOK_BENCH_ROUNDS (3),
#      BENCH_SKIP_BUILD=1 (reuse target/server-release), WEBHOOK_BENCH_OUT (results dir).
# Exits non-zero when a run failed or did not verify.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

LOAD=${WEBHOOK_BENCH_LOAD:-10000:100}
ROUNDS=${WEBHOOK_BENCH_ROUNDS:-3}
OUT=${WEBHOOK_BENCH_OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)-webhooks}
SERVER=target/server-release/hms-server
LOADTOOL=target/server-release/hms-loadtest
peers=${LOAD%%:*} rooms=${LOAD##*:}
mkdir -p "$OUT"
log() { printf '[bench-webhooks] %s\n' "$*" >&2; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --profile server-release -p hms-server -p hms-loadtest"
  cargo build --quiet --profile server-release -p hms-server -p hms-loadtest || { echo "bench-webhooks: build failed"; exit 1; }
fi

failed=()
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
  for mode in off fast slow down; do
    log "round $round: $peers peers in $rooms rooms, webhooks $mode"
    timeout --kill-after=10 400 "$LOADTOOL" --server-bin "$SERVER" --peers "$peers" --rooms "$rooms" \
      --timeout-s 360 --webhooks "$mode" --json "$OUT/$mode-$round.json" >"$OUT/$mode-$round.txt" 2>&1 \
      || { failed+=("$mode-$round"); tail -n 30 "$OUT/$mode-$round.txt" >&2; }
  done
done
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "### Webhooks off and on, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
  echo
  echo "$peers peers in $rooms rooms, every room ended at once; $ROUNDS rounds of (off, fast, slow, down);"
  echo "median of the rounds [min - max]. Load average (1/5/15 min) before: $LOADAVG_START, after: $LOADAVG_END;"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); server, load tool and receiver share it."
  echo "command: bash scripts/bench-webhooks.sh  (WEBHOOK_BENCH_LOAD=$LOAD WEBHOOK_BENCH_ROUNDS=$ROUNDS)"
  echo
  node - "$OUT" "$ROUNDS" <<'EOF'
const fs = require("node:fs");
const [dir, rounds] = [process.argv[2], Number(process.argv[3])];
const modes = ["off", "fast", "slow", "down"];
const runs = Object.fromEntries(modes.map((m) => [m, [...Array(rounds).keys()].map((i) => {
  try { return JSON.parse(fs.readFileSync(`${dir}/${m}-${i + 1}.json`, "utf8")); } catch { return null; }
}).filter(Boolean)]));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };
const cell = (m, f, unit, digits = 0) => {
  const xs = runs[m].map(f).filter((x) => x != null && !Number.isNaN(x));
  if (!xs.length) return "-";
  const fix = (x) => x.toFixed(digits);
  return `${fix(median(xs))}${unit} [${fix(Math.min(...xs))}-${fix(Math.max(...xs))}]`;
};
const rows = [
  ["runs verified", (m) => `${runs[m].filter((r) => r.failures === 0).length} of ${rounds}`],
  ["join latency p50", (m) => cell(m, (r) => r.join_ms.p50, " ms", 1)],
  ["join latency p99", (m) => cell(m, (r) => r.join_ms.p99, " ms", 1)],
  ["joins/s", (m) => cell(m, (r) => r.joins_per_s, "")],
  ["end-room -> each peer's push p50", (m) => cell(m, (r) => r.fan_out_ms.p50, " ms", 1)],
  ["end-room -> each peer's push p99", (m) => cell(m, (r) => r.fan_out_ms.p99, " ms", 1)],
  ["end-room sent -> {} answer p50", (m) => cell(m, (r) => r.end_room_answer_ms.p50, " ms", 1)],
  ["server RSS per peer", (m) => cell(m, (r) => r.rss_per_peer_bytes / 1024, " KiB", 1)],
  ["server CPU time (joins to the end)", (m) => cell(m, (r) => r.server_cpu_s, " s", 2)],
  ["webhook events delivered", (m) => m === "off" ? "-" : cell(m, (r) => r.webhook_events_delivered, ` of ${runs[m][0]?.webhook_events_expected ?? "?"}`)],
  ["end-room burst: events/s delivered", (m) => m === "fast" ? cell(m, (r) => r.webhook_end_events_per_s, "") : "-"],
  ["end-room burst: all delivered within", (m) => m === "fast" ? cell(m, (r) => r.webhook_end_events_delivered_within_s, " s", 2) : "-"],
];
console.log(`| metric | ${modes.join(" | ")} |`);
console.log(`|---|${modes.map(() => "---").join("|")}|`);
for (const [name, f] of rows) console.log(`| ${name} | ${modes.map(f).join(" | ")} |`);
EOF
  echo
  if [ ${#failed[@]} -gt 0 ]; then echo "FAILED runs: ${failed[*]}"; else echo "every run ran and verified"; fi
} | tee "$OUT/table.md"
[ ${#failed[@]} -eq 0 ]

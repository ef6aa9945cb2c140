#!/usr/bin/env bash
# What a connection's buffers cost: the load tool's server RSS per connected peer with the
# shipped WebSocket buffers, and with each of them set back to its size before issue 11
# (HMS_WS_BUFFERS=read:write:fragment, bytes; see server/src/ws.rs), same binary, one run
# after the other. Figures for docs/SERVER.md, "Memory per connection".
#
#   bash scripts/memory-ab.sh [PEERS:ROOMS ...]     (default: 10000:100 10000:1)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
BIN=${BIN:-target/server-release}
[ -x "$BIN/hms-server" ] && [ -x "$BIN/hms-loadtest" ] || cargo build --quiet --profile server-release -p hms-server -p hms-loadtest || exit 1
RUNS=${*:-"10000:100 10000:1"}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)"
echo "| peers / rooms | buffers (read:write:fragment, bytes) | server RSS per peer |"
echo "|---|---|---:|"
for run in $RUNS; do
  peers=${run%%:*} rooms=${run##*:}
  for b in "1024:2048:2048 (shipped)" "8192:2048:2048" "1024:8192:2048" "1024:2048:16384" "2048:4096:4096" "8192:8192:16384 (before)"; do
    sizes=${b%% *}
    out=$(HMS_WS_BUFFERS=$sizes timeout 400 "$BIN/hms-loadtest" --server-bin "$BIN/hms-server" --peers "$peers" \
      --rooms "$rooms" --page-read-min-peers 0 --timeout-s 300 2>/dev/null)
    rss=$(grep -o '[0-9.]* KiB per peer' <<<"$out" | head -1)
    verdict=$(grep -q 'load: 1 passed' <<<"$out" && echo "" || echo " (run FAILED)")
    echo "| $peers / $rooms | $b | ${rss:-?}$verdict |"
  done
done

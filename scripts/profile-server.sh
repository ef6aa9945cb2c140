#!/usr/bin/env bash
# Where the server's time goes during a load run: runs hms-loadtest (which starts the
# server) and samples the server with perf (software cpu-clock, 99 Hz, DWARF call
# graphs), then writes a text report: self time by function and time with callees.
#
#   bash scripts/profile-server.sh [PEERS] [ROOMS] [OUT.txt]      (defaults 10000 1 stdout)
#
# Env: BIN=dir with hms-server and hms-loadtest (default target/server-release, built
# here if missing). Needs `perf` (Debian's linux-perf; scripts/setup.sh does not install
# it: profiling is not part of the test command). Loopback only, bounded by the tool's
# --timeout-s 400.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PEERS=${1:-10000} ROOMS=${2:-1} OUT=${3:-/dev/stdout}
BIN=${BIN:-target/server-release}
command -v perf >/dev/null || { echo "profile-server: perf is not installed (apt-get install linux-perf)"; exit 2; }
if [ ! -x "$BIN/hms-server" ] || [ ! -x "$BIN/hms-loadtest" ]; then
  cargo build --quiet --profile server-release -p hms-server -p hms-loadtest || exit 1
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN/hms-loadtest" --server-bin "$BIN/hms-server" --peers "$PEERS" --rooms "$ROOMS" --timeout-s 400 \
  >"$WORK/load.txt" 2>"$WORK/load.err" &
lt=$!
pid=""
for _ in $(seq 1 150); do
  pid=$(grep -o 'pid [0-9]*' "$WORK/load.err" 2>/dev/null | head -1 | cut -d' ' -f2)
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { cat "$WORK/load.err"; echo "profile-server: the load tool did not start a server"; exit 1; }
perf record -F 99 --call-graph dwarf,8192 -p "$pid" -o "$WORK/perf.data" >"$WORK/perf.log" 2>&1 &
pp=$!
wait $lt
rc=$?
kill -INT $pp 2>/dev/null
wait $pp
{
  echo "# Server CPU profile: $PEERS peers in $ROOMS room(s), commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "perf record -F 99 --call-graph dwarf,8192 -p <hms-server pid>; load average as it ended: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "load tool exit status $rc; its summary:"
  sed 's/^/    /' "$WORK/load.txt"
  echo
  echo "## Self time by function (perf report --no-children --sort symbol, >= 0.7%)"
  echo
  perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.7 2>/dev/null | grep '%' | grep -v '^#' | sed 's/ *$//'
  echo
  echo "## Time including callees (perf report --children --sort symbol, >= 4%)"
  echo
  perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none --percent-limit 4 2>/dev/null | grep '%' | grep -v '^#' | head -40 | sed 's/ *$//'
} >"$OUT"
exit $rc

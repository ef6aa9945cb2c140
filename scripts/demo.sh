#!/usr/bin/env bash
# The quick start's first command: installs what is missing (scripts/setup.sh), builds the
# SDK package pkg/ and the room server, starts the server on 127.0.0.1:7880 (PORT=... to
# change, HOST=... to bind elsewhere) with its SQLite data in .data/demo, serving the demo
# app www/ at / and pkg/ at /pkg/, creates room codes for the room "demo-room" (ROOM=...)
# and prints a host URL and a guest URL. Stays in the foreground until Ctrl-C, then stops
# the server. Safe to run again: the data dir is kept, and the demo room is unlocked
# (re-enabled) at every start, in case the last demo ended it with "lock the room".
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-7880}
ROOM=${ROOM:-demo-room}
DATA=.data/demo
LOG=$DATA/server.log

say() { printf '[demo] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

bash scripts/setup.sh
say "building pkg/ (scripts/build-pkg.sh)"
bash scripts/build-pkg.sh
say "building the server (cargo build -p hms-server)"
cargo build --quiet -p hms-server
BIN=target/debug/hms-server

mkdir -p "$DATA"
OUT=$(mktemp)
server_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    say "stopping the server"
    kill -TERM "$server_pid" 2>/dev/null || true
    # Give it 5 s to close its sockets and database, then insist.
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stdout carries the one `listening on` line; the log (stderr) goes to a file, so that the
# URLs below stay readable.
"$BIN" serve --addr "$HOST:$PORT" --data-dir "$DATA" --www www --pkg pkg >"$OUT" 2>"$LOG" &
server_pid=$!

addr=""
for _ in $(seq 200); do   # up to 20 s
  addr=$(sed -n 's/^listening on \(.*\)$/\1/p' "$OUT" | head -n1)
  [ -n "$addr" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 20 "$LOG" >&2 || true
    die "the server did not start (is port $PORT taken? try PORT=7881 $0)"
  fi
  sleep 0.1
done
[ -n "$addr" ] || die "the server printed no 'listening on' line within 20 s (log: $LOG)"
base="http://$addr"

mgmt=$("$BIN" token --management --data-dir "$DATA") || die "could not mint a management token"
rest() { # METHOD PATH [JSON BODY]
  curl --silent --show-error --fail-with-body --max-time 10 -X "$1" \
    -H "Authorization: Bearer $mgmt" -H "Content-Type: application/json" \
    ${3:+--data "$3"} "$base$2"
}

# A demo that ended with "lock the room" leaves the room locked; start each demo unlocked.
rest POST "/v2/rooms/$ROOM" '{"enabled": true}' >/dev/null \
  || say "warning: could not re-enable room $ROOM (it may still be locked from the last demo)"

codes=$(rest POST "/v2/room-codes/room/$ROOM") || die "could not create room codes for $ROOM"
code_of() { # ROLE: the code of that role in the JSON answer
  printf '%s' "$codes" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const entry = (JSON.parse(s).data || []).find((c) => c.role === process.argv[1]);
      if (!entry) process.exit(1);
      process.stdout.write(entry.code);
    });' "$1"
}
host_code=$(code_of host) || die "no host room code in: $codes"
guest_code=$(code_of guest) || die "no guest room code in: $codes"

cat <<EOF

  hms-client demo is running: room "$ROOM", server $base (log: $LOG)

  Host  (can end the room and remove people):  $base/?code=$host_code
  Guest:                                       $base/?code=$guest_code

  Open both in two browser tabs, join with a name in each, then press "End room" in the
  host tab: the guest tab shows who ended the room and why.

  Press Ctrl-C to stop.

EOF

# In the foreground until Ctrl-C (the trap stops the server) or until the server exits.
set +e
wait "$server_pid"
status=$?
set -e
if [ "$status" -lt 128 ]; then
  server_pid=""
  tail -n 20 "$LOG" >&2 || true
  die "the server exited with status $status (log: $LOG)"
fi

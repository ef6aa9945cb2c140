#!/usr/bin/env bash
# Runs docs/PRODUCTION.md's nginx and Caddy snippets, as written there, in front of the
# real server (a dev build on 127.0.0.1:0 with --trusted-proxies 127.0.0.1), with a test
# certificate made now, free ports and temp logs in place of the production paths. For
# each proxy, a peer (tests/proxy/wsprobe.py, from 127.0.0.2) joins over wss:// through
# it, drops, and takes its place back with its reconnect secret; then it checks that the
# server saw the peer's own address (127.0.0.2) and that the proxy's access log has the
# requests but neither the token nor the secret. Last line: `proxy: N passed, M failed`.
# nginx and Caddy come from Debian's packages, unpacked by scripts/setup.sh into
# target/proxy-tools. Every wait has a deadline; everything started is stopped by PID.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

tools=target/proxy-tools
nginx=$tools/usr/sbin/nginx
caddy=$tools/usr/bin/caddy
verdict() { echo "proxy: $1 passed, $2 failed"; }
if [ ! -x "$nginx" ] || [ ! -x "$caddy" ]; then
  echo "proxy-tests: nginx and Caddy are missing from $tools: run scripts/setup.sh"
  verdict 0 1
  exit 1
fi
if ! cargo build --quiet -p hms-server; then
  echo "proxy-tests: build failed"
  verdict 0 1
  exit 1
fi
server_bin=target/debug/hms-server

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
[ -n "${PROXY_TESTS_KEEP:-}" ] && cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; echo "kept $tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits (10 s at most) until 127.0.0.1:$1 accepts connections.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# The code block of docs/PRODUCTION.md that opens with ```$1 $2.
snippet() { awk -v open="\`\`\`$1 $2" '$0 == open {on = 1; next} on && /^```$/ {exit} on {print}' docs/PRODUCTION.md; }

export HMS_SECRET
HMS_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
HMS_LOG=hms_server=debug,warn "$server_bin" serve --addr 127.0.0.1:0 --data-dir "$tmp/data" \
  --trusted-proxies 127.0.0.1 >"$tmp/server.out" 2>"$tmp/server.log" &
pids+=($!)
server_port=""
for _ in $(seq 200); do
  server_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/server.out" 2>/dev/null)
  [ -n "$server_port" ] && break
  sleep 0.1
done
if [ -z "$server_port" ]; then
  echo "proxy-tests: the server did not start"; cat "$tmp/server.log"; verdict 0 1; exit 1
fi

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null || { echo "proxy-tests: openssl failed"; verdict 0 1; exit 1; }

passed=0 failed=0
# Joins through the proxy on port $2 as peer $3, drops, reconnects with the secret, and
# checks the server's and the proxy's logs ($4). $1 names the proxy.
check() {
  local name=$1 port=$2 peer=$3 access_log=$4 token secret again
  token=$("$server_bin" token --room proxied --user "u-$peer" --role host --data-dir "$tmp/data") || return 1
  secret=$(timeout 20 python3 tests/proxy/wsprobe.py "$port" localhost "$tmp/cert.pem" 127.0.0.2 "$peer" "$token") \
    || { echo "$name: join through the proxy failed"; return 1; }
  again=$(timeout 20 python3 tests/proxy/wsprobe.py "$port" localhost "$tmp/cert.pem" 127.0.0.2 "$peer" "$token" "$secret") \
    || { echo "$name: the reconnect with the secret failed"; return 1; }
  [ "$again" = "$secret" ] || { echo "$name: the place came back with another secret"; return 1; }
  grep -q "ws{ip=127.0.0.2}.*peer=\"$peer\"" "$tmp/server.log" \
    || { echo "$name: the server did not see the peer's own address"; grep "$peer" "$tmp/server.log" | tail -5; return 1; }
  # A proxy writes a WebSocket's log line when it closes: wait for both.
  local lines=0
  for _ in $(seq 100); do
    lines=$(grep -c '/ws' "$access_log" 2>/dev/null)
    [ "${lines:-0}" -ge 2 ] && break
    sleep 0.1
  done
  [ "${lines:-0}" -ge 2 ] || { echo "$name: $lines access log lines for /ws, not 2"; cat "$access_log" 2>/dev/null; return 1; }
  if grep -qF -e "$token" -e "$secret" "$access_log"; then
    echo "$name: the access log holds the token or the reconnect secret"; return 1
  fi
  echo "$name: joined and reconnected through the proxy as 127.0.0.2; no token or secret in its log"
}
run() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }

# nginx, as docs/PRODUCTION.md has it, inside a minimal main config of temp paths.
mkdir -p "$tmp/nginx"
nginx_port=$(free_port)
snippet nginx hms-nginx.conf | sed \
  -e "s#listen 443 ssl;#listen 127.0.0.1:$nginx_port ssl;#" \
  -e "s#/etc/letsencrypt/live/rooms.example.com/fullchain.pem#$tmp/cert.pem#" \
  -e "s#/etc/letsencrypt/live/rooms.example.com/privkey.pem#$tmp/key.pem#" \
  -e "s#/var/log/nginx/hms.access.log#$tmp/nginx/access.log#" \
  -e "s#127.0.0.1:7880#127.0.0.1:$server_port#" >"$tmp/nginx/hms.conf"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
events {}
http {
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $tmp/nginx/hms.conf;
}
EOF
"$nginx" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
if wait_port "$nginx_port"; then
  run check nginx "$nginx_port" via-nginx "$tmp/nginx/access.log"
else
  echo "nginx: did not start"; cat "$tmp/nginx/error.log"; failed=$((failed + 1))
fi

# Caddy, as docs/PRODUCTION.md has it: the site on a free port with the test
# certificate (no ACME), no admin endpoint, no redirect listener on port 80.
mkdir -p "$tmp/caddy"
caddy_port=$(free_port)
{
  printf '{\n\tadmin off\n\tauto_https disable_redirects\n\tstorage file_system %s\n}\n' "$tmp/caddy/storage"
  snippet caddy Caddyfile | sed \
    -e "s#^rooms.example.com {#https://localhost:$caddy_port {\n\ttls $tmp/cert.pem $tmp/key.pem#" \
    -e "s#127.0.0.1:7880#127.0.0.1:$server_port#" \
    -e "s#/var/log/caddy/hms.access.log#$tmp/caddy/access.log#"
} >"$tmp/caddy/Caddyfile"
HOME=$tmp/caddy XDG_DATA_HOME=$tmp/caddy XDG_CONFIG_HOME=$tmp/caddy \
  "$caddy" run --config "$tmp/caddy/Caddyfile" --adapter caddyfile >"$tmp/caddy/out.log" 2>&1 &
pids+=($!)
if wait_port "$caddy_port"; then
  run check Caddy "$caddy_port" via-caddy "$tmp/caddy/access.log"
else
  echo "Caddy: did not start"; tail -20 "$tmp/caddy/out.log"; failed=$((failed + 1))
fi

verdict "$passed" "$failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need on a fresh Debian machine
# with Rust (rustup) and Node: idempotent, non-interactive, and it skips what is present.
# Everything comes from the package registries (Debian's, the Rust crate registry, npm); nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[setup] %s\n' "$*" >&2; }
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# Debian packages: headless browsers and their drivers; sqlite3 and Python's PyJWT for
# docs/PRODUCTION.md's backup and token examples (run by the e2e suite with Debian's
# python3). (Debian's binaryen 108 is not used: its wasm-opt corrupts wasm-bindgen's
# externref table; scripts/build-pkg.sh takes a newer wasm-opt, and esbuild, from npm.)
missing_debs=()
command -v chromium >/dev/null || missing_debs+=(chromium)
command -v chromedriver >/dev/null || missing_debs+=(chromium-driver)
command -v firefox-esr >/dev/null || missing_debs+=(firefox-esr)
command -v sqlite3 >/dev/null || missing_debs+=(sqlite3)
/usr/bin/python3 -c "import jwt" 2>/dev/null || missing_debs+=(python3-jwt)
# The webhook verification snippets of docs/WEBHOOKS.md are run in Python (and Node), and
# scripts/proxy-tests.sh's WebSocket probe (standard library only) too; openssl makes the
# proxy suite's test certificate.
command -v python3 >/dev/null || missing_debs+=(python3)
command -v openssl >/dev/null || missing_debs+=(openssl)
if [ ${#missing_debs[@]} -gt 0 ]; then
  log "apt-get install ${missing_debs[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
fi

# nginx and Caddy from Debian, only to run docs/PRODUCTION.md's proxy snippets in front of
# the server (scripts/proxy-tests.sh): unpacked into target/proxy-tools, not installed, so
# no service starts and nothing listens on ports 80 or 443.
tools=target/proxy-tools
if [ ! -x "$tools/usr/sbin/nginx" ] || [ ! -x "$tools/usr/bin/caddy" ]; then
  log "apt-get download nginx nginx-common caddy, unpacked into $tools"
  dl=$(mktemp -d)
  get() { (cd "$dl" && apt-get download -qq nginx nginx-common caddy 2>/dev/null); }
  get || { $SUDO apt-get update -qq && get; }
  mkdir -p "$tools"
  for d in "$dl"/*.deb; do dpkg -x "$d" "$tools"; done
  rm -rf "$dl"
fi

# Rust target and cargo-installed tools.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
# A crate's own lock file can pin a version the registry no longer serves (seen with
# wasm-bindgen-cli); then install again with fresh resolution.
cargo_install() { cargo install --locked "$@" || cargo install "$@"; }
command -v wasm-pack >/dev/null || { log "cargo install wasm-pack"; cargo_install wasm-pack; }
command -v geckodriver >/dev/null || { log "cargo install geckodriver"; cargo_install geckodriver; }
# wasm-pack uses a wasm-bindgen-cli on PATH only when it matches Cargo.lock exactly;
# otherwise it would try to download one, which this machine cannot do.
want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  log "cargo install wasm-bindgen-cli $want"
  cargo_install wasm-bindgen-cli --version "$want" --force
fi

# npm packages of the browser end-to-end tests (puppeteer-core: it drives Debian's
# chromium and firefox-esr and never downloads a browser; jsonwebtoken for
# docs/PRODUCTION.md's example). scripts/bench.sh installs bench/'s own;
# scripts/package-tests.sh those of tests/package/ and examples/ (they need the package's
# tarball, which scripts/build-pkg.sh makes).
for dir in tests/e2e; do
  if [ -f "$dir/package.json" ] && { [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; }; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
log "ready"

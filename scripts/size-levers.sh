#!/usr/bin/env bash
# Measures what each size lever of the SDK costs: builds the npm package's .wasm and JS
# glue the way scripts/build-pkg.sh does (wasm-pack --release --target web, wasm-opt with
# build-pkg.sh's flags, glue minified by esbuild) once per variant, and prints gzip -9 of
# .wasm + glue together (the budget's measure) beside the first variant.
#
#   scripts/size-levers.sh                 every variant below
#   scripts/size-levers.sh NAME...         only these
#
# Variants (the lever-*/alloc-* cargo features are documented in Cargo.toml):
#   shipped            the package as shipped
#   gloo-builder       the token request built with gloo-net's RequestBuilder
#   future-to-promise  the token promise made by wasm-bindgen-futures' future_to_promise
#                      instead of the SDK's own promise settled from a spawn_local task
#   hashed-imports     the imports keep wasm-bindgen's hashed names (no scripts/short-imports.mjs)
#   js-sys-z           js-sys at opt-level "z" like every other crate (shipped: "s")
#   wasm-opt-Oz        wasm-opt -Oz alone (shipped: $OPT_FLAGS below)
#   wasm-opt-iit       + --ignore-implicit-traps (not shipped: docs/SDK.md, "Size")
#   wasm-opt-tnh       + --traps-never-happen (not shipped: docs/SDK.md, "Size")
#   talc-no-realloc    talc's disable-realloc-in-place feature
#   alloc-lol          lol_alloc's FreeListAllocator instead of talc
#   alloc-default      Rust's default allocator (dlmalloc) instead of talc
#   serde-options      option objects read with serde-wasm-bindgen's from_value
#   serde-frames       + every server frame decoded with from_value into the protocol types
#   main               the package built from `main` (a temporary git worktree), for "before"
# Outputs go to target/size-levers/<variant>/ (pkg/ is left alone), with named.wasm (the
# same optimized module with its function names) and glue.unminified.js for comparing
# variants, e.g. `twiggy diff target/size-levers/main/named.wasm
# target/size-levers/shipped/named.wasm`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
root=$PWD
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(shipped hashed-imports gloo-builder future-to-promise js-sys-z wasm-opt-Oz wasm-opt-iit wasm-opt-tnh
  talc-no-realloc alloc-lol alloc-default serde-options serde-frames main)

# The same pinned tools as build-pkg.sh (installed there into target/npm-tools), and its
# wasm-opt flags (checked, so the two cannot drift apart).
wasm_opt=target/npm-tools/binaryen/node_modules/.bin/wasm-opt
esbuild=target/npm-tools/esbuild/node_modules/.bin/esbuild
OPT_FLAGS="-Oz --converge --low-memory-unused --strip-producers --strip-target-features"
if ! grep -qF -- "\"\$wasm_opt\" $OPT_FLAGS " scripts/build-pkg.sh; then
  echo "size-levers.sh: OPT_FLAGS differ from build-pkg.sh's wasm-opt line" >&2; exit 2
fi
if ! grep -qF 'node scripts/short-imports.mjs pkg/hms_client_bg.wasm "$out/hms_client.js"' scripts/build-pkg.sh; then
  echo "size-levers.sh: build-pkg.sh no longer shortens the import names as build() does" >&2; exit 2
fi
if [ ! -x "$wasm_opt" ] || [ ! -x "$esbuild" ]; then bash scripts/build-pkg.sh >/dev/null; fi

# build DIR OUT OPT_FLAGS [CARGO_ARG...]: the package of the crate in DIR into OUT,
# optimized with wasm-opt OPT_FLAGS (word-split); prints its gzip size.
build() {
  local dir=$1 out=$2 flags=$3
  shift 3
  local args=()
  [ $# -eq 0 ] || args=(-- "$@")
  (cd "$dir" && wasm-pack --quiet build --release --target web --out-dir "$out" --out-name hms_client "${args[@]}") >&2
  # A copy that keeps the function names, for twiggy (wasm-opt drops them without -g).
  # shellcheck disable=SC2086
  "$root/$wasm_opt" $flags -g "$out/hms_client_bg.wasm" -o "$out/named.wasm"
  cp "$out/hms_client.js" "$out/glue.unminified.js"
  # shellcheck disable=SC2086
  "$root/$wasm_opt" $flags "$out/hms_client_bg.wasm" -o "$out/hms_client_bg.wasm"
  # build-pkg.sh's import renaming, where the built tree has it (not `main` before it).
  if [ -f "$dir/scripts/short-imports.mjs" ] && [ -z "${HASHED_IMPORTS:-}" ]; then node "$dir/scripts/short-imports.mjs" "$out/hms_client_bg.wasm" "$out/hms_client.js" >/dev/null; fi
  "$root/$esbuild" "$out/hms_client.js" --minify --format=esm --target=es2020 --log-level=warning --outfile="$out/hms_client.js" --allow-overwrite
  cat "$out/hms_client_bg.wasm" "$out/hms_client.js" | gzip -9 | wc -c
}

first=""
printf '| variant | .wasm + glue gzip (B) | vs %s |\n|---|---:|---:|\n' "${variants[0]}"
for v in "${variants[@]}"; do
  out=$root/target/size-levers/$v
  rm -rf "$out"; mkdir -p "$out"
  case $v in
    shipped) size=$(build . "$out" "$OPT_FLAGS") ;;
    gloo-builder) size=$(build . "$out" "$OPT_FLAGS" --features lever-gloo-builder) ;;
    future-to-promise) size=$(build . "$out" "$OPT_FLAGS" --features lever-future-to-promise) ;;
    js-sys-z) size=$(build . "$out" "$OPT_FLAGS" --config 'profile.release.package.js-sys.opt-level="z"') ;;
    hashed-imports) size=$(HASHED_IMPORTS=1 build . "$out" "$OPT_FLAGS") ;;
    wasm-opt-Oz) size=$(build . "$out" -Oz) ;;
    wasm-opt-iit) size=$(build . "$out" "$OPT_FLAGS --ignore-implicit-traps") ;;
    wasm-opt-tnh) size=$(build . "$out" "$OPT_FLAGS --traps-never-happen") ;;
    talc-no-realloc) size=$(build . "$out" "$OPT_FLAGS" --features talc/disable-realloc-in-place) ;;
    alloc-lol|alloc-default) size=$(build . "$out" "$OPT_FLAGS" --features "$v") ;;
    serde-options) size=$(build . "$out" "$OPT_FLAGS" --features lever-serde-options) ;;
    serde-frames) size=$(build . "$out" "$OPT_FLAGS" --features "lever-serde-options lever-serde-frames") ;;
    main)
      wt=$root/target/size-levers/main-src
      git worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
      git worktree add --detach "$wt" main >/dev/null 2>&1
      # Reuse this checkout's build cache.
      size=$(CARGO_TARGET_DIR=$root/target build "$wt" "$out" "$(grep -oE '"\$wasm_opt" -O[^"]*' "$wt/scripts/build-pkg.sh" | head -1 | cut -d' ' -f2-)")
      git worktree remove --force "$wt"
      ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  [ -n "$first" ] || first=$size
  printf '| %s | %s | %+d |\n' "$v" "$size" $((size - first))
done

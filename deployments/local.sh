#!/usr/bin/env bash
# Local Prefect 3 stack for s2-srgan: an embedded server on 127.0.0.1 (SQLite under the storage
# root), the `srgan-local` process work pool, the deployments of deployments/prefect.yaml and one
# worker. Every command runs the project's .venv/bin/prefect against that server.
#
# Usage: deployments/local.sh COMMAND   (run `deployments/local.sh help` for the list)
#
# Settings (environment, all optional):
#   S2SR_STORAGE          storage root (default <project>/.s2sr); Prefect state: <root>/prefect/
#   S2SR_PREFECT_DIR      Prefect state directory; required when S2SR_STORAGE is s3://...
#   S2SR_PREFECT_PORT     server port (default 4200)
#   S2SR_PREFECT_HOST     bind address (default 127.0.0.1); any other address is refused unless
#                         PREFECT_SERVER_API_AUTH_STRING (user:password) is set; remote UI users
#                         then also need PREFECT_UI_API_URL=http://<host>:<port>/api
#   S2SR_PREFECT_UI       serve the web UI: true|false (default true)
#   S2SR_PREFECT_FILE     deployments file (default deployments/prefect.yaml)
#   S2SR_START_TIMEOUT    seconds to wait for the server or the worker to come up (default 120)
#   S2SR_STOP_TIMEOUT     seconds to wait for a graceful stop before SIGKILL (default 30)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PREFECT="$VENV/bin/prefect"
PY="$VENV/bin/python"
POOL="srgan-local"
NIGHTLY_DEPLOYMENT="retrain-srgan/retrain-nightly"

die() {
  echo "local.sh: error: $*" >&2
  exit 1
}

# A relative S2SR_STORAGE means relative to where the user stands, like any other CLI path.
absolute_path() {
  case "$1" in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
  esac
}

[[ -x "$PREFECT" ]] || die "$PREFECT not found; run 'make setup' in $ROOT first."

STORAGE="${S2SR_STORAGE:-$ROOT/.s2sr}"
if [[ "$STORAGE" == *://* ]]; then
  [[ -n "${S2SR_PREFECT_DIR:-}" ]] ||
    die "S2SR_STORAGE=$STORAGE is remote but the Prefect database must be local;" \
      "set S2SR_PREFECT_DIR to a local directory (e.g. $ROOT/.s2sr/prefect)."
else
  STORAGE="$(absolute_path "$STORAGE")"
fi
STATE="$(absolute_path "${S2SR_PREFECT_DIR:-$STORAGE/prefect}")"
PORT="${S2SR_PREFECT_PORT:-4200}"
HOST="${S2SR_PREFECT_HOST:-127.0.0.1}"
UI="${S2SR_PREFECT_UI:-true}"
PREFECT_FILE="$(absolute_path "${S2SR_PREFECT_FILE:-$ROOT/deployments/prefect.yaml}")"
START_TIMEOUT="${S2SR_START_TIMEOUT:-120}"
STOP_TIMEOUT="${S2SR_STOP_TIMEOUT:-30}"
SERVER_PID="$STATE/run/server.pid"
WORKER_PID="$STATE/run/worker.pid"
SERVER_LOG="$STATE/logs/server.log"
WORKER_LOG="$STATE/logs/worker.log"
NIGHTLY_ON_MARK="$STATE/nightly-retrain.on"
WORKER_NAME="srgan-local-${HOSTNAME:-worker}"

case "$HOST" in
  127.0.0.1 | localhost) CLIENT_HOST="127.0.0.1" ;;
  0.0.0.0 | ::) CLIENT_HOST="127.0.0.1" ;;
  *) CLIENT_HOST="$HOST" ;;
esac

export PREFECT_HOME="$STATE"
export PREFECT_API_URL="http://$CLIENT_HOST:$PORT/api"
export PREFECT_API_DATABASE_CONNECTION_URL="sqlite+aiosqlite:///$STATE/prefect.db"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_SERVER_UI_ENABLED="$UI"
export PREFECT_CLI_PROMPT=false
# The server checks PREFECT_SERVER_API_AUTH_STRING; this machine's CLI, worker and flow runs
# authenticate with PREFECT_API_AUTH_STRING, so mirror it unless the user set a different one.
if [[ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" && -z "${PREFECT_API_AUTH_STRING:-}" ]]; then
  export PREFECT_API_AUTH_STRING="$PREFECT_SERVER_API_AUTH_STRING"
fi
# Flow-run processes inherit the worker's environment: the project's venv first on PATH, the
# repository root and the storage root for the flows' defaults.
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export S2SR_PROJECT_ROOT="$ROOT"
export S2SR_STORAGE="$STORAGE"
cd "$ROOT"

# True when PID names a live (non-zombie) process.
is_alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z* ]]
}

# Prints the PID recorded in PIDFILE when that process is alive and is a Prefect process.
running_pid() {
  local pidfile="$1" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] && is_alive "$pid" || return 1
  # A recycled PID belongs to someone else; never signal it.
  ps -o command= -p "$pid" | grep -q prefect || return 1
  echo "$pid"
}

# Prints PID and all its descendants (flow runs live in their own sessions under the worker).
process_tree() {
  ps -A -o pid= -o ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      keep[root] = 1; print root
      do {
        added = 0
        for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; print p; added = 1 }
      } while (added)
    }'
}

# Starts a command in its own session with output appended to LOG; writes its PID to PIDFILE.
spawn() {
  local log="$1" pidfile="$2"
  shift 2
  mkdir -p "$(dirname "$log")" "$(dirname "$pidfile")"
  "$PY" - "$log" "$pidfile" "$@" <<'PYEOF'
import subprocess
import sys

log, pidfile, *command = sys.argv[1:]
with open(log, "ab") as out:
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
with open(pidfile, "w") as f:
    f.write(f"{proc.pid}\n")
PYEOF
}

# Stops the process in PIDFILE with its process group and descendants: SIGTERM, then SIGKILL
# after STOP_TIMEOUT seconds. Removes the pid file. (Plain strings, not arrays: bash 3.2 on macOS.)
stop_tree() {
  local label="$1" pidfile="$2" root pid child signal=TERM deadline known signaled alive
  if ! root="$(running_pid "$pidfile")"; then
    rm -f "$pidfile"
    echo "$label: not running."
    return 0
  fi
  known=" $root "
  signaled=" $root "
  kill -TERM -- "-$root" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while :; do
    # Rescan every round: a flow run submitted during shutdown is a new descendant.
    alive=""
    for pid in $known; do
      if is_alive "$pid"; then
        for child in $(process_tree "$pid"); do
          if [[ "$known" != *" $child "* ]]; then
            known="$known$child "
          fi
        done
      fi
    done
    for pid in $known; do
      if is_alive "$pid"; then
        alive="$alive$pid "
      fi
    done
    [[ -n "$alive" ]] || break
    if ((SECONDS >= deadline)); then
      [[ "$signal" == KILL ]] && die "$label: processes $alive survive SIGKILL."
      echo "$label: still running after ${STOP_TIMEOUT}s; sending SIGKILL to $alive" >&2
      signal=KILL
      signaled=" $root "
      kill -KILL -- "-$root" 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    # One signal per process and phase: a second SIGTERM cuts Prefect's graceful shutdown short.
    for pid in $alive; do
      if [[ "$signaled" != *" $pid "* ]]; then
        kill "-$signal" "$pid" 2>/dev/null || true
        signaled="$signaled$pid "
      fi
    done
    sleep 0.5
  done
  rm -f "$pidfile"
  echo "$label: stopped (pid $root)."
}

api_healthy() {
  "$PY" - "$PREFECT_API_URL" <<'PYEOF'
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1] + "/health", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
PYEOF
}

worker_online() {
  "$PY" - "$PREFECT_API_URL" "$POOL" "$WORKER_NAME" <<'PYEOF'
import base64
import json
import os
import sys
import urllib.request

api_url, pool, name = sys.argv[1:]
request = urllib.request.Request(
    f"{api_url}/work_pools/{pool}/workers/filter",
    data=b"{}",
    headers={"Content-Type": "application/json"},
)
if auth := os.environ.get("PREFECT_API_AUTH_STRING"):
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        workers = json.load(response)
except OSError:
    sys.exit(1)
sys.exit(0 if any(w["name"] == name and w["status"] == "ONLINE" for w in workers) else 1)
PYEOF
}

require_server() {
  api_healthy || die "no Prefect server answers at $PREFECT_API_URL;" \
    "start it with 'deployments/local.sh server-start' (or 'up')."
}

# Waits until CHECK succeeds while PIDFILE's process lives; on failure shows LOG's tail.
wait_until() {
  local label="$1" pidfile="$2" log="$3" check="$4" deadline=$((SECONDS + START_TIMEOUT))
  until "$check"; do
    if ! running_pid "$pidfile" >/dev/null; then
      echo "local.sh: error: $label exited during start-up. Last lines of $log:" >&2
      tail -n 30 "$log" >&2 || true
      rm -f "$pidfile"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "local.sh: error: $label not ready after ${START_TIMEOUT}s (raise" \
        "S2SR_START_TIMEOUT on a slow machine). Last lines of $log:" >&2
      tail -n 30 "$log" >&2 || true
      stop_tree "$label" "$pidfile" >&2
      exit 1
    fi
    sleep 1
  done
}

cmd_server_start() {
  local pid
  if pid="$(running_pid "$SERVER_PID")"; then
    echo "Prefect server already running (pid $pid) at $PREFECT_API_URL"
    return 0
  fi
  case "$HOST" in
    127.0.0.1 | localhost) ;;
    *)
      [[ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" ]] ||
        die "S2SR_PREFECT_HOST=$HOST exposes the server beyond this machine;" \
          "set PREFECT_SERVER_API_AUTH_STRING=user:password first (see docs/orchestration.md)."
      [[ -n "${PREFECT_UI_API_URL:-}" ]] ||
        echo "local.sh: warning: remote browsers will call $PREFECT_API_URL; set" \
          "PREFECT_UI_API_URL=http://<this host's name>:$PORT/api for them." >&2
      ;;
  esac
  local ui_flag="--no-ui"
  [[ "$UI" == true ]] && ui_flag="--ui"
  spawn "$SERVER_LOG" "$SERVER_PID" "$PREFECT" server start --host "$HOST" --port "$PORT" \
    "$ui_flag" --analytics-off
  wait_until "Prefect server" "$SERVER_PID" "$SERVER_LOG" api_healthy
  echo "Prefect server running (pid $(<"$SERVER_PID")) at $PREFECT_API_URL; log: $SERVER_LOG"
  [[ "$UI" == true ]] && echo "UI: http://$CLIENT_HOST:$PORT"
  return 0
}

cmd_pool() {
  require_server
  if "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1; then
    echo "Work pool '$POOL' exists."
  else
    "$PREFECT" work-pool create "$POOL" --type process
  fi
}

cmd_deploy() {
  require_server
  [[ -f "$PREFECT_FILE" ]] || die "deployments file $PREFECT_FILE not found."
  # The build step records $PWD as the flow runs' working directory: deploy from the root.
  "$PREFECT" --no-prompt deploy --all --prefect-file "$PREFECT_FILE"
  # prefect.yaml deploys the nightly retrain paused; `nightly on` is remembered across deploys.
  if [[ -f "$NIGHTLY_ON_MARK" ]]; then
    local rc=0
    set_nightly true || rc=$?
    # rc 3: the deployments file has no nightly retrain (e.g. S2SR_PREFECT_FILE); nothing to do.
    ((rc == 0 || rc == 3)) || die "could not resume $NIGHTLY_DEPLOYMENT; see the error above."
  fi
}

cmd_worker_start() {
  local pid
  require_server
  if pid="$(running_pid "$WORKER_PID")"; then
    echo "Worker already running (pid $pid) on pool '$POOL'."
    return 0
  fi
  # Plain, line-buffered logs: no colour codes or progress bars in worker.log.
  PREFECT_LOGGING_COLORS=false PREFECT_CLI_COLORS=false TQDM_DISABLE=1 PYTHONUNBUFFERED=1 \
    spawn "$WORKER_LOG" "$WORKER_PID" "$PREFECT" worker start --pool "$POOL" --type process \
    --name "$WORKER_NAME"
  wait_until "Prefect worker" "$WORKER_PID" "$WORKER_LOG" worker_online
  echo "Worker '$WORKER_NAME' running (pid $(<"$WORKER_PID")); log: $WORKER_LOG"
}

# Pauses (false) or resumes (true) every schedule of the nightly retrain deployment; exits 3
# when it is not deployed.
set_nightly() {
  "$PY" - "$NIGHTLY_DEPLOYMENT" "$1" <<'PYEOF'
import sys

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

name, active = sys.argv[1], sys.argv[2] == "true"
with get_client(sync_client=True) as client:
    try:
        deployment = client.read_deployment_by_name(name)
    except ObjectNotFound:
        sys.exit(3)
    for schedule in deployment.schedules:
        client.update_deployment_schedule(deployment.id, schedule.id, active=active)
print(f"{name}: schedule {'active' if active else 'paused'}.")
PYEOF
}

cmd_nightly() {
  require_server
  local active rc=0
  case "${1:-}" in
    on)
      active=true
      mkdir -p "$STATE"
      touch "$NIGHTLY_ON_MARK"
      ;;
    off)
      active=false
      rm -f "$NIGHTLY_ON_MARK"
      ;;
    *) die "usage: deployments/local.sh nightly on|off" ;;
  esac
  set_nightly "$active" || rc=$?
  if ((rc == 3)); then
    echo "$NIGHTLY_DEPLOYMENT is not deployed yet; 'deployments/local.sh deploy' will" \
      "create it with the schedule $([[ $active == true ]] && echo active || echo paused)."
  elif ((rc != 0)); then
    die "could not change the $NIGHTLY_DEPLOYMENT schedule; see the error above."
  fi
}

cmd_status() {
  local pid
  echo "Prefect state: $STATE"
  if pid="$(running_pid "$SERVER_PID")"; then
    if api_healthy; then
      echo "server: running (pid $pid), healthy at $PREFECT_API_URL"
    else
      echo "server: running (pid $pid), NOT answering at $PREFECT_API_URL; see $SERVER_LOG"
    fi
  else
    echo "server: stopped"
  fi
  if pid="$(running_pid "$WORKER_PID")"; then
    echo "worker: running (pid $pid) on pool '$POOL'; log: $WORKER_LOG"
  else
    echo "worker: stopped"
  fi
  if api_healthy; then
    [[ "$UI" == true ]] && echo "UI: http://$CLIENT_HOST:$PORT"
    "$PREFECT" deployment ls
  fi
}

cmd_up() {
  cmd_server_start
  cmd_pool
  cmd_deploy
  cmd_worker_start
  echo "Ready. Try: prefect deployment run train-srgan/train-srgan" \
    "(with PREFECT_API_URL=$PREFECT_API_URL)"
}

cmd_down() {
  stop_tree "Prefect worker" "$WORKER_PID"
  stop_tree "Prefect server" "$SERVER_PID"
}

usage() {
  cat <<EOF
Usage: deployments/local.sh COMMAND

  up             server-start + pool + deploy + worker-start
  down           worker-stop + server-stop
  status         what runs, the API/UI address and the deployments
  server-start   start the Prefect server on $HOST:$PORT (idempotent)
  server-stop    stop it (SIGTERM, then SIGKILL after \$S2SR_STOP_TIMEOUT s)
  pool           create the '$POOL' process work pool if missing
  deploy         prefect deploy --all from $PREFECT_FILE
  worker-start   start a worker on '$POOL' (idempotent)
  worker-stop    stop it and the flow runs it started (they end as Crashed)
  nightly on|off turn the $NIGHTLY_DEPLOYMENT schedule on or off (off after install)
  prefect ARGS   run the project's prefect CLI against this server (e.g. deployment run ...)
  python ARGS    run the project's python with this server's Prefect settings
EOF
}

case "${1:-help}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  server-start) cmd_server_start ;;
  server-stop) stop_tree "Prefect server" "$SERVER_PID" ;;
  pool) cmd_pool ;;
  deploy) cmd_deploy ;;
  worker-start) cmd_worker_start ;;
  worker-stop) stop_tree "Prefect worker" "$WORKER_PID" ;;
  nightly) cmd_nightly "${2:-}" ;;
  prefect) shift; exec "$PREFECT" "$@" ;;
  python) shift; exec "$PY" "$@" ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    die "unknown command '$1'."
    ;;
esac

#!/usr/bin/env bash
# Deployment test (ctest `deploy`). Usage: deploy.sh BINARY
#  1. The shipped files under deploy/ (tests/deploy/check_manifests.py): systemd unit,
#     Kubernetes manifests, Dockerfile and .dockerignore parse, hold what the server needs,
#     and every stop timeout covers the budget the binary prints for the settings they set.
#  2. --print-shutdown-budget: figures for the defaults and for changed timeouts, errors.
#  3. sd_notify against the real server: READY=1 only once /health/ready answers 200,
#     WATCHDOG=1 pings while it runs, STOPPING=1 at SIGTERM, exit 0; an abstract socket;
#     another process's watchdog; an unusable NOTIFY_SOCKET warns once and changes nothing.
#  4. The server as PID 1 of its own PID namespace (as in a container) stops on SIGTERM.
set -euo pipefail
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../../scripts/lib/common.sh"
source "$HERE/../process/lib.sh"
# Debian's python3 carries python3-yaml (si_install_deps installs both).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

work=$(mktemp -d /tmp/si-deploy.XXXXXX)
started=()
cleanup() {
  local p
  for p in "${started[@]}"; do
    { kill -KILL "$p" && wait "$p"; } 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# ------------------------------------------------------------------ 1. deploy/ files
echo "# deploy/ files against $BIN"
manifest_rc=0
manifest_out=$("$PY" "$HERE/check_manifests.py" "$SI_ROOT" "$BIN" 2>&1) || manifest_rc=$?
echo "$manifest_out"
passed=$((passed + $(grep -c '^ok ' <<<"$manifest_out" || true)))
n_fail=$(grep -c '^FAIL ' <<<"$manifest_out" || true)
failed=$((failed + n_fail))
if [ "$manifest_rc" -ne 0 ] && [ "$n_fail" -eq 0 ]; then
  fail_now "check_manifests.py stopped with code $manifest_rc before reporting"
fi

# ------------------------------------------------------------------ 2. the budget flag
echo "# --print-shutdown-budget"
# budget_rc VAR=value...: the flag for exactly these settings, in an empty directory.
budget_rc() {
  local dir="$work/budget"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && env -i PATH="$PATH" "$@" "$BIN" --print-shutdown-budget)
}
# budget VAR=value...: its output, empty when it failed (the checks on it then fail).
budget() { budget_rc "$@" || true; }
b=$(budget)
check "defaults: critical path 47 s (gateway 32 s, webhook dispatcher 10 s, db 5 s)" \
  [ "$(jq .critical_path_ms <<<"$b")" = 47000 ]
check "defaults: hard timeout 60 s, recommended grace 65 s" \
  [ "$(jq -c '[.hard_timeout_ms, .recommended_grace_seconds]' <<<"$b")" = "[60000,65]" ]
check "defaults: critical path within the hard timeout, no warning" \
  [ "$(jq -c '[.critical_path_within_hard_timeout, has("warning")]' <<<"$b")" = "[true,false]" ]
check "defaults: stop waves start with the gateway and end with the database" \
  [ "$(jq -c '[(.stop_waves[0] | index("http_gateway") != null), (.stop_waves[-1] | index("db") != null)]' <<<"$b")" = "[true,true]" ]
check "starts nothing (no database file or directory created)" [ -z "$(ls -A "$work/budget")" ]
check "SHUTDOWN_DRAIN_DELAY=5 adds 5 s to the critical path" \
  [ "$(budget SHUTDOWN_DRAIN_DELAY=5 | jq .critical_path_ms)" = 52000 ]
check "SHUTDOWN_HARD_TIMEOUT=120 recommends 125 s" \
  [ "$(budget SHUTDOWN_HARD_TIMEOUT=120 | jq .recommended_grace_seconds)" = 125 ]
b=$(budget SHUTDOWN_GRACEFUL_TIMEOUT=55)
check "a critical path past the hard timeout is flagged (72 s >= 60 s)" \
  [ "$(jq -c '[.critical_path_ms, .critical_path_within_hard_timeout, has("warning")]' <<<"$b")" = "[72000,false,true]" ]
check "without ingestion and sync the plan has no ingestor" \
  [ "$(budget INGEST_ENABLED=false SYNC_ENABLED=false | jq '.deadlines_ms | has("ingestor")')" = false ]
rc=0
err=$(budget_rc SHUTDOWN_DB_TIMEOUT=abc 2>&1 >/dev/null) || rc=$?
check "an invalid setting exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "an invalid setting is named: $err" grep -q "^stellar-insights: configuration error: SHUTDOWN_DB_TIMEOUT" <<<"$err"
rc=0
(cd "$work" && env -i PATH="$PATH" "$BIN" --check-config --print-shutdown-budget \
  >/dev/null 2>&1) || rc=$?
check "--check-config with --print-shutdown-budget exits 2 (got $rc)" [ "$rc" -eq 2 ]

# ------------------------------------------------------------------ 3. sd_notify
echo "# sd_notify"
# listen NAME ADDRESS: a notification socket at ADDRESS recording into $work/NAME/notify.jsonl.
listen() {
  run_dir="$work/$1"
  mkdir -p "$run_dir"
  port=$(si_free_port)
  msgs="$run_dir/notify.jsonl"
  "$PY" "$HERE/notify_listener.py" "$2" "$msgs" "http://127.0.0.1:$port" 120 &
  started+=("$!")
  si_wait_for "the notification socket $2" 10 grep -q listening "$msgs" \
    || fail_now "the notification socket $2 did not come up"
}
# serve VAR=value...: the server in $run_dir on $port with these settings (NOTIFY_SOCKET...).
serve() {
  (cd "$run_dir" && exec env -i PATH="$PATH" HOME="$run_dir" LOG_FORMAT=json HOST=127.0.0.1 \
    PORT="$port" HORIZON_URL=http://127.0.0.1:9 SHUTDOWN_REPORT_PATH="$run_dir/report.json" \
    DATABASE_URL="sqlite://$run_dir/si.db" "$@" "$BIN" 2>"$run_dir/log") &
  server_pid=$!
  started+=("$server_pid")
}
# terminate: SIGTERM, then the exit code in $exit_code.
terminate() {
  kill -TERM "$server_pid" 2>/dev/null || true
  exit_code=0
  wait "$server_pid" || exit_code=$?
}
# messages JQ_FILTER: the filter over the recorded datagrams (as one array).
messages() { jq -rs "[.[] | select(.msg != null)] | $1" "$msgs"; }
has_message() { [ "$(messages "map(select(.msg | split(\"\\n\") | index(\"$1\"))) | length")" -ge "${2:-1}" ]; }
log_ready() { grep -q '"msg":"ready' "$run_dir/log"; }
ready_status() {
  has_message "MAINPID=$server_pid" && has_message "STATUS=serving on 127.0.0.1:$port (10 actors)"
}
stopping_status() {
  has_message STOPPING=1 \
    && has_message "STATUS=stopping (SIGTERM): shutdown cascade, hard deadline 60000 ms"
}
no_ping_within() { ! si_wait_for "a watchdog ping" "$1" has_message WATCHDOG=1 2>/dev/null; }

# A filesystem socket and a 400 ms watchdog: pings every 200 ms.
listen path "$work/notify.sock"
serve NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=400000
si_wait_for "READY=1" 30 has_message READY=1 || cat "$run_dir/log" >&2
check "READY=1 arrives" has_message READY=1
check "the 'ready' log line is there too" log_ready
check "at READY=1 GET /health/ready answers 200 (got $(messages '[.[] | .ready_http // empty][0]'))" \
  [ "$(messages '[.[] | .ready_http // empty][0]')" = 200 ]
check "at READY=1 GET /health answers 200" [ "$(messages '[.[] | .health_http // empty][0]')" = 200 ]
check "READY=1 carries MAINPID=$server_pid and a STATUS" ready_status
si_wait_for "3 watchdog pings" 10 has_message WATCHDOG=1 3 || true
check "WATCHDOG=1 pings while running ($(messages 'map(select(.msg == "WATCHDOG=1")) | length') so far)" \
  has_message WATCHDOG=1 3
check "the log announces pings every 200 ms, probe limit 100 ms" \
  grep -q 'every 200 ms while the liveness probe answers within 100 ms' "$run_dir/log"
terminate
check "SIGTERM: exit 0 (got $exit_code)" [ "$exit_code" -eq 0 ]
check "SIGTERM: every actor ok" [ "$(jq '[.actors[].outcome] | all(. == "ok")' "$run_dir/report.json")" = true ]
si_wait_for "STOPPING=1" 5 has_message STOPPING=1 || true
check "STOPPING=1 arrives with a STATUS naming the signal" stopping_status
check "STOPPING=1 extends the stop timeout to the hard deadline + 5 s" has_message EXTEND_TIMEOUT_USEC=65000000
order=$(messages '[.[] | .msg | if test("READY=1") then "R" elif test("STOPPING=1") then "S" elif . == "WATCHDOG=1" then "W" else "?" end] | join("")' || true)
check "order: one READY, pings, one STOPPING, nothing after ($order)" \
  grep -Eq '^RW+S$' <<<"$order"
check "every datagram comes from the server process (NotifyAccess=main)" \
  [ "$(messages "map(select(.pid != $server_pid)) | length")" = 0 ]
check "no sd_notify warning in the log" [ "$(grep -c 'sd_notify' "$run_dir/log" || true)" = 0 ]

# An abstract socket (@name), and a watchdog that belongs to another process (WATCHDOG_PID).
abstract="@si-deploy-$$-$RANDOM"
listen abstract "$abstract"
serve NOTIFY_SOCKET="$abstract" WATCHDOG_USEC=200000 WATCHDOG_PID=1
si_wait_for "READY=1 on $abstract" 30 has_message READY=1 || cat "$run_dir/log" >&2
check "abstract socket: READY=1 arrives, /health/ready 200 then" \
  [ "$(messages '[.[] | .ready_http // empty][0]')" = 200 ]
# A ping would come within 100 ms; give it ten times that to show up.
check "WATCHDOG_PID of another process: no pings" no_ping_within 1
terminate
check "abstract socket: SIGTERM exits 0 (got $exit_code)" [ "$exit_code" -eq 0 ]
si_wait_for "STOPPING=1 on $abstract" 5 has_message STOPPING=1 || true
check "abstract socket: STOPPING=1 arrives" has_message STOPPING=1

# Unusable NOTIFY_SOCKET values: the server runs as without one and says so once.
for bad in "$work/nobody-listens.sock" relative.sock; do
  run_dir="$work/bad-${bad##*/}"
  mkdir -p "$run_dir"
  port=$(si_free_port)
  serve NOTIFY_SOCKET="$bad"
  si_wait_for "ready with NOTIFY_SOCKET=$bad" 30 log_ready || cat "$run_dir/log" >&2
  check "NOTIFY_SOCKET=$bad: the server still becomes ready" log_ready
  terminate
  check "NOTIFY_SOCKET=$bad: SIGTERM exits 0 (got $exit_code)" [ "$exit_code" -eq 0 ]
  check "NOTIFY_SOCKET=$bad: exactly one sd_notify warning" \
    [ "$(grep -c 'sd_notify: ' "$run_dir/log" || true)" = 1 ]
done

# ------------------------------------------------------------------ 4. PID 1
echo "# the server as PID 1 (exec-form ENTRYPOINT in a container)"
if unshare --pid --fork true 2>/dev/null; then
  run_dir="$work/pid1"
  mkdir -p "$run_dir"
  port=$(si_free_port)
  # env execs the server: it is PID 1 of the new namespace; unshare stays outside.
  (cd "$run_dir" && exec unshare --pid --fork --kill-child env -i PATH="$PATH" LOG_FORMAT=json \
    HOST=127.0.0.1 PORT="$port" HORIZON_URL=http://127.0.0.1:9 \
    SHUTDOWN_REPORT_PATH="$run_dir/report.json" DATABASE_URL="sqlite://$run_dir/si.db" \
    "$BIN" 2>"$run_dir/log") &
  ns_pid=$!
  started+=("$ns_pid")
  si_wait_for "PID 1 ready" 30 log_ready || cat "$run_dir/log" >&2
  check "PID 1: ready (the log says pid 1)" grep -q '"msg":"ready.*(pid 1)' "$run_dir/log"
  inner=$(ps -o pid= --ppid "$ns_pid" | tr -d ' ' | head -n 1 || true)
  if [ -n "$inner" ]; then
    started+=("$inner")
    # From outside the namespace, as a container runtime sends it.
    kill -TERM "$inner"
    exit_code=0
    wait "$ns_pid" || exit_code=$?
    check "PID 1: SIGTERM from outside exits 0 (got $exit_code)" [ "$exit_code" -eq 0 ]
    check "PID 1: every actor ok" \
      [ "$(jq '[.actors[].outcome] | all(. == "ok")' "$run_dir/report.json" 2>/dev/null)" = true ]
  else
    fail_now "PID 1: cannot find the server's host pid under unshare ($ns_pid)"
  fi
else
  echo "# unshare --pid is not permitted here: PID-1 signal handling not checked"
fi

finish deploy

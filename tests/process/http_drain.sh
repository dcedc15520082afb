#!/usr/bin/env bash
# Process-level HTTP drain test against the real binary (design.md §3): requests in flight
# at SIGTERM complete with 200 and `Connection: close`; readiness flips to 503 at once;
# writes during SHUTDOWN_DRAIN_DELAY get 503 SHUTTING_DOWN + Retry-After while reads are
# served; new connections are refused once the acceptor closes; idle keep-alive connections
# are closed; a request outliving SHUTDOWN_GRACEFUL_TIMEOUT is cut and the summary says so.
# Usage: http_drain.sh BINARY
set -uo pipefail
BIN="$1"
source "$(dirname "$0")/../../scripts/lib/common.sh"
source "$(dirname "$0")/lib.sh"

work=$(mktemp -d /tmp/si-drain.XXXXXX)
trap 'pkill -KILL -P $$ 2>/dev/null; rm -rf "$work"' EXIT

start_server() {  # start_server NAME [VAR=value...]
  local name="$1"
  shift
  run_dir="$work/$name"
  mkdir -p "$run_dir"
  port=$(si_free_port)
  (cd "$run_dir" && exec env -i PATH="$PATH" HOME="$run_dir" LOG_FORMAT=json PORT="$port" \
      HOST=127.0.0.1 HTTP_TEST_ROUTES=true ADMIN_API_TOKEN=secret HORIZON_URL=http://127.0.0.1:9 \
      DATABASE_URL="sqlite://$run_dir/si.db" SHUTDOWN_REPORT_PATH="$run_dir/report.json" \
      "$@" "$BIN" 2>"$run_dir/log") &
  server_pid=$!
  base="http://127.0.0.1:$port"
  si_wait_for "$name listening" 30 curl -sf "$base/health" || { cat "$run_dir/log" >&2; return 1; }
}

in_flight() {  # prints the in-flight gauge (the /metrics request itself counts as one)
  curl -s "$base/metrics" | awk '/^si_http_in_flight_requests /{print $2}'
}
at_least_in_flight() { [ "$(in_flight)" -ge "$1" ]; }
refused() { curl -s -o /dev/null "$base/health"; [ $? -eq 7 ]; }
gateway() { jq -r ".actors[] | select(.actor==\"http_gateway\") | $1" "$run_dir/report.json"; }

# --- 1: in-flight requests complete; new connections refused; idle keep-alive closed
start_server inflight SHUTDOWN_GRACEFUL_TIMEOUT=10
for i in 1 2 3 4 5; do
  curl -s -D "$run_dir/h$i" -o "$run_dir/b$i" "$base/api/v1/test/slow?ms=1500" &
done
check "five slow requests are in flight" si_wait_for "in-flight" 10 at_least_in_flight 6
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >&3
IFS= read -r -t 5 status_line <&3
check "keep-alive connection served before drain" grep -q "200" <<<"$status_line"
t0=$(date +%s%N)
kill -TERM "$server_pid"
check "new connections are refused once the acceptor closed" si_wait_for refused 5 refused
# The idle keep-alive connection is closed by the server: reading reaches EOF.
check "idle keep-alive connection closed by the drain" timeout 5 bash -c 'cat <&3 >/dev/null'
exec 3<&-
wait "$server_pid"
code=$?
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait
check "exit code 0 (got $code)" [ "$code" -eq 0 ]
for i in 1 2 3 4 5; do
  check "in-flight request $i answered 200" grep -q "^HTTP/1.1 200" "$run_dir/h$i"
  check "in-flight request $i carries Connection: close" grep -qi "^Connection: close" "$run_dir/h$i"
done
check "gateway outcome ok" [ "$(gateway .outcome)" = "ok" ]
check "served_during_drain counts the five ($(gateway .counts.served_during_drain))" \
  [ "$(gateway .counts.served_during_drain)" -ge 5 ]
echo "# SIGTERM-to-exit with 5 requests of 1.5 s in flight: ${stop_ms} ms"

# --- 2: drain delay: readiness 503 at once, reads served, writes refused with Retry-After
start_server delay SHUTDOWN_DRAIN_DELAY=1
curl -s -o /dev/null "$base/api/v1/test/slow?ms=1500" &
si_wait_for "in-flight" 10 at_least_in_flight 2
kill -TERM "$server_pid"
ready_503() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health/ready")" = 503 ]; }
check "readiness answers 503 once the drain began" si_wait_for ready 5 ready_503
check "readiness body says draining" \
  bash -c "curl -s '$base/health/ready' | jq -e '.status == \"draining\"' >/dev/null"
check "liveness still 200 while draining" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" = 200 ]
hdr=$(curl -s -D - -o /dev/null -X POST -H 'Authorization: Bearer secret' \
  -H 'Content-Type: application/json' -d '{}' "$base/api/v1/anchors")
check "a write during drain is refused 503" grep -q "^HTTP/1.1 503" <<<"$hdr"
check "the refusal carries Retry-After" grep -qi "^Retry-After:" <<<"$hdr"
check "reads still answered during the delay" \
  bash -c "curl -s -D - -o /dev/null '$base/health' | grep -q '^HTTP/1.1 200'"
wait "$server_pid"
code=$?
wait
check "drain-delay run exits 0 (got $code)" [ "$code" -eq 0 ]
check "writes_refused_during_drain counted" [ "$(gateway .counts.writes_refused_during_drain)" -ge 1 ]

# --- 3: a request outliving SHUTDOWN_GRACEFUL_TIMEOUT is cut and reported
start_server cut SHUTDOWN_GRACEFUL_TIMEOUT=0.5
curl -s -o "$run_dir/cut.out" -w '%{http_code}' "$base/api/v1/test/slow?ms=20000" \
  >"$run_dir/cut.code" &
si_wait_for "in-flight" 10 at_least_in_flight 2
t0=$(date +%s%N)
kill -TERM "$server_pid"
wait "$server_pid"
code=$?
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait
check "cut run exits 1: not every actor ok (got $code)" [ "$code" -eq 1 ]
check "cut run stops near the graceful timeout (${stop_ms} ms)" [ "$stop_ms" -lt 2500 ]
check "gateway outcome timed_out" [ "$(gateway .outcome)" = "timed_out" ]
check "gateway counts one cut request" [ "$(gateway .counts.cut)" -eq 1 ]
check "the cut client saw no response (code $(cat "$run_dir/cut.code"))" \
  [ "$(cat "$run_dir/cut.code")" = "000" ]
check "cache and db still stopped cleanly after the cut" \
  [ "$(jq -r '[.actors[] | select(.actor != "http_gateway") | .outcome] | all(. == "ok")' \
      "$run_dir/report.json")" = "true" ]

finish http_drain

#!/usr/bin/env bash
# Drain under full load: wrk with 256 keep-alive connections on GET /api/v1/corridors,
# SIGTERM in the middle of the run. Prints requests completed, socket errors other than the
# refused connects after the acceptor closed, non-2xx answers, and SIGTERM-to-exit time.
# Target: 0 requests lost (no read/write/timeout errors, no non-2xx).
#   scripts/bench/drain.sh [DURATION_S=8] [CONNECTIONS=256] [SIGTERM_AFTER_S=3]
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$SI_ROOT/scripts/lib/bench.sh"
duration="${1:-8}"
conns="${2:-256}"
term_after="${3:-3}"
si_bench_setup
trap 'si_bench_stop_server; rm -rf "$BENCH_DIR"' EXIT
ulimit -n 65536 2>/dev/null || true

si_bench_start_server drain
si_bench_stop_server
si_bench_seed_corridors "$SERVER_DIR/si.db" 50
si_bench_start_server drain
url="http://127.0.0.1:$SERVER_PORT/api/v1/corridors"

wrk -t2 -c"$conns" -d"${duration}s" --timeout 10s "$url" >"$BENCH_DIR/wrk.out" 2>&1 &
wrk_pid=$!
# Wait until load is really flowing (the server has answered requests), then SIGTERM.
loaded() { [ "$(curl -s "http://127.0.0.1:$SERVER_PORT/metrics" |
  awk '/^si_http_requests_total.*corridors/{s+=$2} END{print s+0}')" -gt 1000 ]; }
si_wait_for "load" 30 loaded
sleep "$term_after"   # the benchmark's own pacing: SIGTERM lands mid-run by design
t0=$(date +%s%N)
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
code=$?
exit_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$wrk_pid" || true

read -r requests connect read_e write_e timeout_e non2xx \
  < <(si_wrk_socket_figures "$BENCH_DIR/wrk.out")
served=$(jq -r '.actors[] | select(.actor=="http_gateway") | .counts.served_during_drain' \
  "$SERVER_DIR/report.json")
outcome=$(jq -r '.actors[] | select(.actor=="http_gateway") | .outcome' "$SERVER_DIR/report.json")
echo "wrk -t2 -c$conns -d${duration}s, SIGTERM after load + ${term_after}s"
echo "requests completed:               ${requests:-0}"
echo "served during drain:              ${served}"
echo "non-2xx responses:                ${non2xx:-0}"
echo "read errors (reset mid-exchange): ${read_e:-0}"
echo "timeouts:                         ${timeout_e:-0}"
# Refused reconnects: after the acceptor closed, and after the exit (see si_wrk_socket_figures).
echo "refused reconnects (expected):    $(( ${connect:-0} + ${write_e:-0} ))"
echo "gateway outcome / exit code:      $outcome / $code"
echo "SIGTERM-to-exit:                  ${exit_ms} ms"
lost=$(( ${read_e:-0} + ${timeout_e:-0} + ${non2xx:-0} ))
echo "requests possibly lost:           $lost (target 0)"

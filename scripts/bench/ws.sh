#!/usr/bin/env bash
# WebSocket fan-out bench (not a test): N clients on /ws subscribed to one channel, one
# broadcast at a time through the test-only route POST /api/v1/test/broadcast
# (HTTP_TEST_ROUTES=true, never in production), then SIGTERM. Prints trigger-to-delivery
# p50/p99 over all clients per broadcast (the target is judged on the median round's p99;
# the worst round's is printed too), the server's RSS per idle connection (VmRSS after connecting
# minus before, / N), and SIGTERM-to-all-closed, against the targets:
#   p99 <= 50 ms at 10k clients, <= 16 KiB RSS per idle connection,
#   every client closed with 1001 within SHUTDOWN_WS_GRACE_MS + 200 ms of SIGTERM.
#
#   scripts/bench/ws.sh [--client native|node] [--no-floor] [CLIENTS=10000] [GRACE_MS=500]
#                       [ROUNDS=5] [WORKERS]
#
# --client native (default): tools/ws_bench (`ws-bench`, C++, epoll, WORKERS threads,
#   default 1): a lean client, so that the figures are the server's; it also prints the
#   server's and its own CPU time per broadcast and when the close frames arrived. A
#   connection counts as closed when the client read the server's close frame and the end
#   of the stream; the client closes its ended sockets once all have ended, so that its own
#   TCP teardown (on loopback ~40% of its CPU in the close phase) does not compete with the
#   server for the cores while the close is measured. WS_CLIENT_CLOSE_EACH=1 closes each
#   socket at once instead (ws-bench and ws-floor --close-each).
# --client node: Node's `ws` package (tests/ws_e2e/bench.mjs, WORKERS processes, default 2),
#   an independent implementation; its own processing of the messages (and its share of
#   the CPU) is part of the measured latency.
# The clients run on the same machine as the server: on a loaded machine every figure is
# inflated, so the load average is printed first.
# SI_BIN=path/to/stellar-insights skips the server build, WS_BENCH_BIN=path/to/ws-bench the
# client build (both are built in build/release otherwise). WS_BENCH_OPTS adds ws-bench
# options (`ws-bench --help`, e.g. "--sched-batch"). KEEP_WORK=1 keeps the work directory
# (server log, shutdown report, client JSON, floor.json); WS_BENCH_LOG_LEVEL (default warn)
# is the server's LOG_LEVEL. WS_ROUND_GAP_MS (default 300) is the pause between broadcasts, for
# either client and the floor alike: on a host that makes memory left alone for a while slow
# to touch again (docs/websocket.md, "Cold and warm rounds"), a short pause (e.g. 20) measures
# the broadcast with the paths it runs still warm.
# The floor (--client native only): once the server has exited, tools/ws_floor (`ws-floor`)
# runs with the same CLIENTS and ROUNDS: what this host does with no framework at all (a
# forked raw-socket server writing pre-encoded frames from nproc threads, its close frames
# from one, and a client like ws-bench's), a peer measured in the same run. Two more lines at the end: the floor's
# figures, and the server's as multiples of them (fan-out p99; SIGTERM -> all closed minus
# GRACE_MS against the floor's close phase). --no-floor (before CLIENTS) or WS_FLOOR=0 skips
# it; WS_FLOOR_BIN=path/to/ws-floor skips its build (built in build/release otherwise). A
# failing ws-floor is reported on the floor line (its reason on stderr) and makes the script
# exit 1, after every other line was printed.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

client=native
floor="${WS_FLOOR:-1}"
while [ "${1:-}" = "--client" ] || [ "${1:-}" = "--no-floor" ]; do
  if [ "$1" = "--no-floor" ]; then
    floor=0
    shift
    continue
  fi
  client="${2:-}"
  shift 2 || { echo "--client needs native or node" >&2; exit 2; }
done
case "$client" in
  native) default_workers=1 ;;
  node) default_workers=2 ;;
  *) echo "--client must be native or node, not '$client'" >&2; exit 2 ;;
esac
clients="${1:-10000}"
grace="${2:-500}"
rounds="${3:-5}"
workers="${4:-$default_workers}"
for v in "$clients" "$grace" "$rounds" "$workers"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "CLIENTS GRACE_MS ROUNDS WORKERS must be integers" >&2; exit 2; }
done
if [ "$clients" -lt 1 ] || [ "$rounds" -lt 1 ] || [ "$workers" -lt 1 ]; then
  echo "CLIENTS, ROUNDS and WORKERS must be at least 1" >&2
  exit 2
fi

# Each client is a socket in both processes: raise the soft limit as far as allowed.
want=$(( clients + 1024 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  echo "ulimit -Hn is $hard: at most $(( hard - 1024 )) clients here" >&2
  exit 1
fi
ulimit -n "$want"

if [ "$client" != native ]; then floor=0; fi  # the floor is ws-bench's peer
close_each=()  # passed to ws-bench and ws-floor alike
if [ "${WS_CLIENT_CLOSE_EACH:-0}" != 0 ]; then close_each=(--close-each); fi
gap="${WS_ROUND_GAP_MS:-300}"
if ! [[ "$gap" =~ ^[0-9]+$ ]] || [ "$gap" -gt 600000 ]; then
  echo "WS_ROUND_GAP_MS must be an integer from 0 to 600000 (milliseconds)" >&2
  exit 2
fi
export WS_ROUND_GAP_MS="$gap"  # the Node client reads it
both=("${close_each[@]}" --round-gap-ms "$gap")
if [ -z "${SI_BIN:-}" ] || { [ "$client" = native ] && [ -z "${WS_BENCH_BIN:-}" ]; } \
    || { [ "$floor" != 0 ] && [ -z "${WS_FLOOR_BIN:-}" ]; }; then
  si_install_deps
fi
if [ -z "${SI_BIN:-}" ]; then
  SI_BUILD_TARGET=stellar-insights si_build "$SI_ROOT/build/release" Release >/dev/null
  SI_BIN="$SI_ROOT/build/release/stellar-insights"
fi
e2e="$SI_ROOT/tests/ws_e2e"
if [ "$client" = native ]; then
  if [ -z "${WS_BENCH_BIN:-}" ]; then
    SI_BUILD_TARGET=ws-bench si_build "$SI_ROOT/build/release" Release >/dev/null
    WS_BENCH_BIN="$SI_ROOT/build/release/ws-bench"
  fi
  [ -x "$WS_BENCH_BIN" ] || { echo "WS_BENCH_BIN=$WS_BENCH_BIN is not executable" >&2; exit 1; }
  if [ "$floor" != 0 ] && [ -z "${WS_FLOOR_BIN:-}" ]; then
    SI_BUILD_TARGET=ws-floor si_build "$SI_ROOT/build/release" Release >/dev/null
    WS_FLOOR_BIN="$SI_ROOT/build/release/ws-floor"
  fi
  if [ "$floor" != 0 ]; then
    [ -x "$WS_FLOOR_BIN" ] || { echo "WS_FLOOR_BIN=$WS_FLOOR_BIN is not executable" >&2; exit 1; }
  fi
elif [ ! -f "$e2e/node_modules/ws/package.json" ]; then
  npm ci --prefix "$e2e" --no-audit --no-fund --loglevel=error >/dev/null
fi
[ -x "$SI_BIN" ] || { echo "SI_BIN=$SI_BIN is not executable" >&2; exit 1; }
SI_BIN=$(realpath "$SI_BIN")  # the server runs in its work directory

dir=$(mktemp -d /tmp/si-bench-ws.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
load=$(cut -d' ' -f1-3 /proc/loadavg)
port=$(si_free_port)
(cd "$dir" && exec env -i PATH="$PATH" HOME="$dir" HOST=127.0.0.1 PORT="$port" \
    DATABASE_URL="sqlite://$dir/si.db" LOG_LEVEL="${WS_BENCH_LOG_LEVEL:-warn}" \
    SHUTDOWN_REPORT_PATH="$dir/report.json" \
    HTTP_TEST_ROUTES=true INGEST_ENABLED=false SYNC_ENABLED=false \
    WS_MAX_CONNECTIONS=$(( clients + 100 )) SHUTDOWN_WS_GRACE_MS="$grace" \
    SHUTDOWN_WS_TIMEOUT=30 SHUTDOWN_HARD_TIMEOUT=60 "$SI_BIN" 2>"$dir/log") &
server_pid=$!
si_wait_for "server" 30 curl -sf "http://127.0.0.1:$port/health"

# Both clients make their HTTP requests (trigger, /metrics) on one kept-alive connection,
# opened before the settle pause (a publisher holds its connection: setting one up is not part
# of a broadcast) and closed before the SIGTERM, so the HTTP drain has nothing to wait for.
if [ "$client" = native ]; then
  read -r -a extra <<<"${WS_BENCH_OPTS:-}"
  extra+=("${both[@]}")
  "$WS_BENCH_BIN" "$port" "$server_pid" "$clients" "$grace" "$rounds" "$workers" "${extra[@]}" \
    >"$dir/out.json"
  who="native ws-bench, $workers thread(s)"
else
  node "$e2e/bench.mjs" "$port" "$server_pid" "$clients" "$grace" "$rounds" "$workers" \
    >"$dir/out.json"
  who="Node ws, $workers process(es)"
fi
code=0
wait "$server_pid" || code=$?
server_pid=""
r="$dir/out.json"
hub=$(jq -c '.actors[] | select(.actor=="ws_hub") | {outcome, duration_ms, counts}' \
  "$dir/report.json")
limit=$(( grace + 200 ))
ms() { jq "$1 | if . == null then \"-\" else (. * 10 | round / 10) end" "$r"; }
worst_round='[.rounds[].p99] | max'  # jq: a run's slowest round (server's and floor's JSON)
echo "machine load (1/5/15 min):   $load on $(nproc) cores (figures under load are inflated)"
echo "binary:                      $SI_BIN"
echo "client:                      $who"
echo "clients:                     $clients (connected in $(jq .connect_ms "$r") ms)"
jq -r '.rounds | to_entries[] | "broadcast \(.key + 1):                 queued \(.value.queued) (POST answered after \(.value.queued_ms * 10 | round / 10) ms), delivered \(.value.delivered), first \(if .value.first == null then "-" else .value.first * 10 | round / 10 end) ms, p50 \(.value.p50 * 10 | round / 10) ms, p99 \(.value.p99 * 10 | round / 10) ms, max \(.value.max * 10 | round / 10) ms"' "$r"
echo "fan-out p99 (median round):  $(ms .p99_median_round_ms) ms (target <= 50 ms at 10k)"
echo "fan-out p99 (worst round):   $(ms "$worst_round") ms"
echo "hub queueing, per broadcast: $(ms .hub_fanout_mean_ms) ms mean (si_ws_fanout_seconds; the rest is writing and the clients)"
if [ "$client" = native ]; then
  echo "CPU per broadcast:           server $(ms .server_cpu_ms_per_round) ms, client $(ms .client_cpu_ms_per_round) ms (trigger to last delivery)"
fi
echo "server RSS:                  $(jq .rss_before_kib "$r") KiB -> $(jq .rss_after_kib "$r") KiB"
echo "RSS per idle connection:     $(ms .rss_per_connection_kib) KiB (target <= 16 KiB)"
echo "server_shutdown received:    $(jq .notified "$r") of $clients ($(ms .sigterm_to_first_shutdown_ms)..$(ms .sigterm_to_last_shutdown_ms) ms after SIGTERM)"
if [ "$client" = native ]; then
  echo "close frames received:       $(jq .close_frames "$r") of $clients ($(ms .sigterm_to_first_close_frame_ms)..$(ms .sigterm_to_last_close_frame_ms) ms after SIGTERM)"
  echo "CPU, SIGTERM to all closed:  server $(ms .server_cpu_ms_shutdown) ms, client $(ms .client_cpu_ms_shutdown) ms (client sockets closed $(jq -r 'if .client_close_each then "as each ended" else "after the last ended" end' "$r")); server, SIGTERM to exit: $(ms .server_cpu_ms_sigterm_to_exit) ms"
fi
echo "shutdown -> close, shortest: $(ms .shutdown_to_close_min_ms) ms (grace $grace)"
echo "closed with 1001:            $(jq .closed_1001 "$r") of $clients"
echo "SIGTERM -> all closed:       $(ms .sigterm_to_all_closed_ms) ms (target <= $limit ms = grace $grace + 200)"
echo "ws_hub report:               $hub"
echo "server exit code:            $code"

# The floor: after the server has exited, so that the two never share the machine.
[ "$floor" != 0 ] || exit 0
floor_code=0
"$WS_FLOOR_BIN" "$clients" "$rounds" "${both[@]}" >"$dir/floor.json" || floor_code=$?
if [ "$floor_code" != 0 ]; then
  echo "floor (raw sockets, same machine, same run): ws-floor failed (exit $floor_code, reason above)"
  exit 1
fi
f="$dir/floor.json"
fms() { jq "$1 * 10 | round / 10" "$f"; }
ratio() {  # A / B with one decimal, "-" when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || b <= 0) print "-";
    else printf "%.1f\n", a / b }'
}
echo "floor (raw sockets, same machine, same run): broadcast p99 $(fms .p99_median_round_ms) ms (median round), $(fms "$worst_round") ms (worst round), sender CPU $(fms .sender_cpu_ms_per_round) ms, client CPU $(fms .client_cpu_ms_per_round) ms per broadcast; close frames, answers, the end of each stream: all closed $(fms .all_closed_ms) ms after the command"
fanout=$(ratio "$(jq .p99_median_round_ms "$r")" "$(jq .p99_median_round_ms "$f")")
server_close=$(jq "if .sigterm_to_all_closed_ms == null then null
  else .sigterm_to_all_closed_ms - $grace end" "$r")
closing=$(ratio "$server_close" "$(jq .all_closed_ms "$f")")
worst=$(ratio "$(jq "$worst_round" "$r")" "$(jq "$worst_round" "$f")")
echo "server vs floor:             fan-out p99 ${fanout}x the floor (worst round ${worst}x); SIGTERM->all closed minus grace: ${closing}x the floor's close phase"

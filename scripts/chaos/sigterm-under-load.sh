#!/usr/bin/env bash
# Chaos scenario sigterm-under-load (docs/chaos.md): M cycles of: start the server (by default
# the production shape: PostgreSQL + Redis, ingesting a growing chain from the Horizon
# simulator, schedulers and webhook dispatcher running), open K WebSocket clients subscribed
# to `payments`, put wrk load on read routes, SIGTERM at a random instant, then measure:
# requests sent but not answered (wrk read errors and timeouts) and answered with an error
# (non-2xx), both 0; every WebSocket client got `server_shutdown`, then a 1001 close with a
# clean close handshake; the shutdown report lists every actor of the plan, all `ok`; exit 0;
# SIGTERM-to-exit time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
source "$here/lib_shutdown.sh"

CHAOS_NAME=sigterm-under-load  # names the usage errors too

usage() {
  cat <<'USAGE'
usage: scripts/chaos/sigterm-under-load.sh [options]
  --cycles M          start / load / SIGTERM cycles (default 30)
  --ws-clients K      WebSocket clients per cycle, subscribed to `payments` (default 50)
  --connections C     wrk keep-alive connections (default 64)
  --backend B         postgres (PostgreSQL 15 + Redis 7 as the cache; default) or sqlite
                      (an SQLite file and the in-process cache)
  --min-delay-ms MS   shortest time between load flowing and SIGTERM (default 200)
  --max-delay-ms MS   longest time between load flowing and SIGTERM (default 2500)
  --seed S            seed of the SIGTERM instants (default: random, printed)
  --exit-limit S      a server still running this long after SIGTERM is a hang (default 90)
  --max-seconds T     wall-time bound of the whole run, build excluded (default 600)
  -h, --help          this text
wrk (-t1) sends GET /api/v1/corridors, /api/v1/liquidity-pools and /health in turn. Prints
one line per cycle, then one verdict line:
  sigterm-under-load: PASS|FAIL cycles=… requests=… unanswered=0 non2xx=0 ws_clients=…
    ws_shutdown_1001=…/… summary_complete=…/… exit0=…/… sigterm_to_exit_p50_ms=… p99_ms=…
    seconds=…
Exit code 0 on PASS, 1 on FAIL, 2 on bad usage. Needs node and npm (the clients are
tests/ws_e2e's, Node's `ws`). SI_CHAOS_BUILD_DIR (default build/release) is where the server
and simulator are built; KEEP_WORK=1 keeps the work directory.
USAGE
}

cycles=30
ws_clients=50
connections=64
backend=postgres
min_delay=200
max_delay=2500
seed=""
exit_limit=90
max_seconds=600
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --cycles | --ws-clients | --connections | --backend | --min-delay-ms | --max-delay-ms | \
      --seed | --exit-limit | --max-seconds)
      [ $# -ge 2 ] || { echo "sigterm-under-load: $1 needs a value" >&2; exit 2; } ;;
    *) echo "sigterm-under-load: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  case "$1" in
    --cycles) cycles=$(si_shutdown_arg "$1" "$2" 1 10000) ;;
    --ws-clients) ws_clients=$(si_shutdown_arg "$1" "$2" 0 5000) ;;
    --connections) connections=$(si_shutdown_arg "$1" "$2" 1 5000) ;;
    --min-delay-ms) min_delay=$(si_shutdown_arg "$1" "$2" 0 600000) ;;
    --max-delay-ms) max_delay=$(si_shutdown_arg "$1" "$2" 0 600000) ;;
    --seed) seed=$(si_shutdown_arg "$1" "$2" 0 32767) ;;
    --exit-limit) exit_limit=$(si_shutdown_arg "$1" "$2" 5 3600) ;;
    --max-seconds) max_seconds=$(si_shutdown_arg "$1" "$2" 30 86400) ;;
    --backend)
      [ "$2" = postgres ] || [ "$2" = sqlite ] \
        || { echo "sigterm-under-load: --backend is postgres or sqlite, got '$2'" >&2; exit 2; }
      backend="$2" ;;
  esac
  shift 2
done
if [ "$min_delay" -gt "$max_delay" ]; then
  echo "sigterm-under-load: --min-delay-ms ($min_delay) exceeds --max-delay-ms ($max_delay)" >&2
  exit 2
fi
for tool in node npm; do
  command -v "$tool" >/dev/null \
    || { echo "sigterm-under-load: $tool is required (WebSocket clients)" >&2; exit 1; }
done
[ -n "$seed" ] || seed=$(( $(date +%s%N) % 32768 ))
RANDOM=$seed

si_chaos_setup sigterm-under-load "$max_seconds"
SI_PACKAGES+=(wrk)
si_install_deps
si_chaos_build
# The deadline and the seconds count from here: the build is not part of the run.
CHAOS_DEADLINE_MS=$(( $(si_chaos_ms) + max_seconds * 1000 ))
t_start=$(date +%s)
ulimit -n 65536 2>/dev/null || true
si_chaos_start_backend "$backend"
# A growing chain (a ledger every 500 ms): the ingestor commits and the broadcaster publishes
# payments to the clients while the load runs.
si_start_sim "$SI_SIM_BIN" "$CHAOS_WORK/sim" --seed "$seed" --start-ledger 1000 --ledgers 60 \
  --close-ms 500 --tx-per-ledger 10 --pools 6 --assets 6 --prewarm 0 --cache-mb 128
si_chaos_server_env HORIZON_URL="$SIM_URL" INGEST_START_LEDGER=1000 HORIZON_RATE_LIMIT=0 \
  SYNC_METRICS_INTERVAL=5 LOG_LEVEL=info WS_MAX_CONNECTIONS=$(( ws_clients + 100 ))
budget=$(si_shutdown_budget)
expected=$(jq -c '.deadlines_ms | keys' <<<"$budget")
depends=$(jq -c '.depends_on' <<<"$budget")

si_chaos_on_exit si_shutdown_cleanup

si_log "sigterm-under-load: $cycles cycles, $ws_clients WebSocket clients, wrk -c$connections," \
  "backend $backend, seed $seed"
done_cycles=0
passed_cycles=0
requests=0
unanswered=0
non2xx=0
ws_total=0
ws_ok=0
complete=0
exit0=0
: >"$CHAOS_WORK/stop_ms"
for i in $(seq 1 "$cycles"); do
  if [ "$(si_chaos_left_s)" -lt $(( exit_limit + 60 )) ]; then
    echo "detail: the --max-seconds bound leaves no time for cycle $i"
    break
  fi
  cdir="$CHAOS_WORK/cycle-$i"
  mkdir -p "$cdir"
  si_chaos_start_server "cycle-$i"
  si_chaos_wait_ready 30
  si_shutdown_ws_start "$cdir" "$ws_clients" "$exit_limit"
  base=$(si_shutdown_requests)
  si_shutdown_load_start "$cdir/wrk.out" "$connections"
  si_chaos_wait "load on the server" 30 si_shutdown_answered $(( base + 2 * connections + 100 ))
  delay=$(( min_delay + RANDOM % (max_delay - min_delay + 1) ))
  # The random instant of the SIGTERM: pacing by design, not a synchronisation.
  sleep "$(si_shutdown_secs "$delay")"
  si_shutdown_stop "$exit_limit"
  si_shutdown_load_stop
  ws=$(si_shutdown_ws_result "$cdir")
  done_cycles=$((done_cycles + 1))
  read -r c_req _ c_read _ c_timeout c_non2xx < <(si_wrk_socket_figures "$cdir/wrk.out")
  c_lost=$(( c_read + c_timeout ))
  c_ws_ok=$(jq .ok <<<"$ws")
  c_complete=false
  gw="-"
  if [ -s "$SERVER_DIR/report.json" ]; then
    f=$(si_shutdown_report_figures "$SERVER_DIR/report.json" "$expected" "$depends")
    if [ "$(jq '.listed and (.not_ok | length == 0)' <<<"$f")" = true ]; then
      c_complete=true
    fi
    gw=$(jq -r '.actors[] | select(.actor == "http_gateway")
      | "served_during_drain=\(.counts.served_during_drain) cut=\(.counts.cut)"' \
      "$SERVER_DIR/report.json")
  fi
  requests=$((requests + c_req))
  unanswered=$((unanswered + c_lost))
  non2xx=$((non2xx + c_non2xx))
  ws_total=$((ws_total + ws_clients))
  ws_ok=$((ws_ok + c_ws_ok))
  $c_complete && complete=$((complete + 1))
  [ "$SERVER_EXIT" = 0 ] && exit0=$((exit0 + 1))
  echo "$STOP_MS" >>"$CHAOS_WORK/stop_ms"
  good=false
  if [ "$c_lost" -eq 0 ] && [ "$c_non2xx" -eq 0 ] && [ "$c_ws_ok" -eq "$ws_clients" ] \
    && [ "$(jq .subscribed <<<"$ws")" -eq "$ws_clients" ] && $c_complete \
    && [ "$SERVER_EXIT" = 0 ] && [ "$c_req" -gt 0 ]; then
    good=true
    passed_cycles=$((passed_cycles + 1))
  fi
  echo "cycle $i/$cycles: sigterm_after_ms=$delay requests=$c_req unanswered=$c_lost" \
    "non2xx=$c_non2xx ws_ok=$c_ws_ok/$ws_clients payments_to_ws=$(jq .payments <<<"$ws")" \
    "summary=$($c_complete && echo complete || echo INCOMPLETE) $gw exit=$SERVER_EXIT" \
    "sigterm_to_exit_ms=$STOP_MS $($good && echo ok || echo FAIL)"
  if ! $good; then
    echo "detail: cycle $i: ws $ws"
    [ -z "${f:-}" ] || jq -r '"detail: cycle '"$i"': report not ok: \(.not_ok | join(", "));" +
      " missing: \(.missing | join(", ")); extra: \(.extra | join(", "))"' <<<"$f"
    grep -h "Socket errors\|Non-2xx" "$cdir/wrk.out" | sed "s/^ */detail: cycle $i: wrk: /"
  fi
  f=""
done

result=FAIL
if [ "$done_cycles" -eq "$cycles" ] && [ "$passed_cycles" -eq "$cycles" ]; then
  result=PASS
fi
si_chaos_verdict "$result" "cycles=$done_cycles requests=$requests unanswered=$unanswered" \
  "non2xx=$non2xx ws_clients=$ws_total ws_shutdown_1001=$ws_ok/$ws_total" \
  "summary_complete=$complete/$done_cycles exit0=$exit0/$done_cycles" \
  "sigterm_to_exit_p50_ms=$(si_chaos_percentile 50 "$CHAOS_WORK/stop_ms")" \
  "p99_ms=$(si_chaos_percentile 99 "$CHAOS_WORK/stop_ms")" \
  "seconds=$(( $(date +%s) - t_start ))"
[ "$result" = PASS ]

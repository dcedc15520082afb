#!/usr/bin/env bash
# Chaos scenario timeouts (docs/chaos.md): for each chosen actor of the shutdown plan, the
# server runs with TEST_HANG_ON_DRAIN=<actor> (that actor ignores its drain request and keeps
# running) and every shutdown deadline short, with WebSocket clients connected and wrk load
# on read routes, then gets SIGTERM. From the shutdown report: the hung actor is `timed_out`
# with a duration within a tolerance of its deadline, every other actor is `ok`, no actor
# stopped before the actors that use it had reported, the exit code is 1
# (docs/graceful-shutdown.md), and SIGTERM-to-exit stays within the plan's critical path plus
# a margin. The rest of the cascade stays clean for the clients too: unless the hung actor is
# the ws_hub, every WebSocket client gets server_shutdown and a clean 1001 close; unless it
# is the http_gateway, no request is left unanswered.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
source "$here/lib_shutdown.sh"

CHAOS_NAME=timeouts  # names the usage errors too

usage() {
  cat <<'USAGE'
usage: scripts/chaos/timeouts.sh [options]
  --actors a,b,...   actors made to hang, one server run each (default: every actor of the
                     shutdown plan, as the server's --print-shutdown-budget lists it)
  --deadline-ms MS   every shutdown deadline setting (SHUTDOWN_GRACEFUL_TIMEOUT,
                     SHUTDOWN_WS_TIMEOUT, SHUTDOWN_CACHE_TIMEOUT, SHUTDOWN_DB_TIMEOUT,
                     SHUTDOWN_BACKGROUND_TIMEOUT) in ms (default 1000; the gateway's plan
                     deadline adds its fixed 2 s margin)
  --tolerance-ms MS  how far past its deadline the hung actor may be reported (default 300)
  --margin-ms MS     allowed beyond the plan's critical path for SIGTERM-to-exit (default 2000)
  --ws-clients K     WebSocket clients per run, subscribed to `payments` (default 10)
  --connections C    wrk keep-alive connections per run (default 8)
  --backend B        sqlite (an SQLite file and the in-process cache; default) or postgres
                     (PostgreSQL 15 + Redis 7)
  --max-seconds T    wall-time bound of the whole run, build excluded (default 180)
  -h, --help         this text
Prints one line per actor, then one verdict line:
  timeouts: PASS|FAIL actors=… timed_out_at_deadline=…/… others_ok=…/… order_ok=…/… exit1=…/…
    ws_1001=…/… unanswered=… overshoot_max_ms=… sigterm_to_exit_max_ms=… bound_ms=…
    seconds=…
(ws_1001 and unanswered leave out the runs whose hung actor owns them: ws_hub, http_gateway.)
Exit code 0 on PASS, 1 on FAIL, 2 on bad usage. Needs node and npm (tests/ws_e2e's clients).
SI_CHAOS_BUILD_DIR (default build/release) is where the server and simulator are built;
KEEP_WORK=1 keeps the work directory.
USAGE
}

actors_arg=""
deadline_ms=1000
tolerance_ms=300
margin_ms=2000
ws_clients=10
connections=8
backend=sqlite
max_seconds=180
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --actors | --deadline-ms | --tolerance-ms | --margin-ms | --ws-clients | --connections | \
      --backend | --max-seconds)
      [ $# -ge 2 ] || { echo "timeouts: $1 needs a value" >&2; exit 2; } ;;
    *) echo "timeouts: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  case "$1" in
    --actors) actors_arg="$2" ;;
    --deadline-ms) deadline_ms=$(si_shutdown_arg "$1" "$2" 100 60000) ;;
    --tolerance-ms) tolerance_ms=$(si_shutdown_arg "$1" "$2" 0 60000) ;;
    --margin-ms) margin_ms=$(si_shutdown_arg "$1" "$2" 0 600000) ;;
    --ws-clients) ws_clients=$(si_shutdown_arg "$1" "$2" 0 5000) ;;
    --connections) connections=$(si_shutdown_arg "$1" "$2" 1 5000) ;;
    --max-seconds) max_seconds=$(si_shutdown_arg "$1" "$2" 10 86400) ;;
    --backend)
      [ "$2" = sqlite ] || [ "$2" = postgres ] \
        || { echo "timeouts: --backend is sqlite or postgres, got '$2'" >&2; exit 2; }
      backend="$2" ;;
  esac
  shift 2
done
if [ -n "$actors_arg" ] && ! [[ "$actors_arg" =~ ^[a-z_]+(,[a-z_]+)*$ ]]; then
  echo "timeouts: --actors is a comma-separated list of actor names, got '$actors_arg'" >&2
  exit 2
fi

for tool in node npm; do
  command -v "$tool" >/dev/null \
    || { echo "timeouts: $tool is required (WebSocket clients)" >&2; exit 1; }
done

si_chaos_setup timeouts "$max_seconds"
SI_PACKAGES+=(wrk)
si_install_deps
si_chaos_build
# The deadline and the seconds count from here: the build is not part of the run.
CHAOS_DEADLINE_MS=$(( $(si_chaos_ms) + max_seconds * 1000 ))
t_start=$(date +%s)
si_chaos_on_exit si_shutdown_cleanup
si_chaos_start_backend "$backend"
# A growing chain, so the ingestor and the schedulers have real work when the drain comes.
si_start_sim "$SI_SIM_BIN" "$CHAOS_WORK/sim" --seed 11 --start-ledger 1000 --ledgers 60 \
  --close-ms 500 --tx-per-ledger 8 --pools 4 --assets 4 --prewarm 0 --cache-mb 64
secs=$(si_shutdown_secs "$deadline_ms")
si_chaos_server_env HORIZON_URL="$SIM_URL" INGEST_START_LEDGER=1000 HORIZON_RATE_LIMIT=0 \
  LOG_LEVEL=info SHUTDOWN_GRACEFUL_TIMEOUT="$secs" SHUTDOWN_WS_TIMEOUT="$secs" \
  SHUTDOWN_CACHE_TIMEOUT="$secs" SHUTDOWN_DB_TIMEOUT="$secs" \
  SHUTDOWN_BACKGROUND_TIMEOUT="$secs" SHUTDOWN_HARD_TIMEOUT=$(( deadline_ms * 6 / 1000 + 32 )) \
  WS_MAX_CONNECTIONS=$(( ws_clients + 100 ))

budget=$(si_shutdown_budget)
expected=$(jq -c '.deadlines_ms | keys' <<<"$budget")
depends=$(jq -c '.depends_on' <<<"$budget")
critical_ms=$(jq .critical_path_ms <<<"$budget")
bound_ms=$(( critical_ms + margin_ms ))
if [ "$(jq .critical_path_within_hard_timeout <<<"$budget")" != true ]; then
  echo "detail: the plan's critical path reaches SHUTDOWN_HARD_TIMEOUT: $budget"
  exit 1
fi
if [ -z "$actors_arg" ]; then
  actors_arg=$(jq -r 'join(",")' <<<"$expected")
fi
IFS=, read -r -a actors <<<"$actors_arg"
for a in "${actors[@]}"; do
  if [ "$(jq --arg a "$a" 'index($a) != null' <<<"$expected")" != true ]; then
    echo "timeouts: '$a' is not an actor of the shutdown plan ($(jq -r 'join(", ")' \
      <<<"$expected"))" >&2
    CHAOS_VERDICT=usage
    exit 2
  fi
done
si_log "timeouts: ${#actors[@]} actors, deadlines ${deadline_ms} ms, critical path" \
  "${critical_ms} ms, SIGTERM-to-exit bound ${bound_ms} ms"

n=0
ok_timed=0
ok_others=0
ok_order=0
ok_exit=0
ws_ok=0
ws_expected=0
unanswered=0
passed=0
overshoot_max=0
stop_max=0
for a in "${actors[@]}"; do
  if [ "$(si_chaos_left_s)" -lt $(( bound_ms / 1000 + 35 )) ]; then
    echo "detail: the --max-seconds bound leaves no time for '$a' and the rest"
    break
  fi
  n=$((n + 1))
  si_chaos_start_server "$a" TEST_HANG_ON_DRAIN="$a"
  si_chaos_wait_ready 30
  si_shutdown_ws_start "$SERVER_DIR" "$ws_clients" $(( bound_ms / 1000 + 30 ))
  base=$(si_shutdown_requests)
  si_shutdown_load_start "$SERVER_DIR/wrk.out" "$connections"
  si_chaos_wait "load on the server" 30 si_shutdown_answered $(( base + 100 ))
  si_shutdown_stop $(( bound_ms / 1000 + 30 ))
  si_shutdown_load_stop
  ws=$(si_shutdown_ws_result "$SERVER_DIR")
  read -r _ _ c_read _ c_timeout c_non2xx < <(si_wrk_socket_figures "$SERVER_DIR/wrk.out")
  c_lost=$(( c_read + c_timeout + c_non2xx ))
  deadline=$(jq --arg a "$a" '.deadlines_ms[$a]' <<<"$budget")
  line="timeouts: actor=$a"
  if [ ! -s "$SERVER_DIR/report.json" ]; then
    echo "$line no shutdown report exit=$SERVER_EXIT sigterm_to_exit_ms=$STOP_MS FAIL"
    tail -5 "$SERVER_DIR/log" | sed 's/^/detail: /'
    continue
  fi
  f=$(si_shutdown_report_figures "$SERVER_DIR/report.json" "$expected" "$depends")
  outcome=$(jq -r --arg a "$a" '.actors[$a].outcome // "absent"' <<<"$f")
  duration=$(jq -r --arg a "$a" '.actors[$a].duration_ms // -1' <<<"$f")
  others_ok=$(jq --arg a "$a" '[.actors | to_entries[] | select(.key != $a)
    | .value.outcome == "ok"] | map(select(.)) | length' <<<"$f")
  others=$(( $(jq length <<<"$expected") - 1 ))
  violations=$(jq '.order_violations | length' <<<"$f")
  overshoot=$(( duration - deadline ))
  # The actor itself said it ignored the drain: the timeout is the switch's, not a crash's.
  ignored=$(jq -cR --arg a "$a" 'fromjson? | select(.logger == $a)
    | select(.msg | test("TEST_HANG_ON_DRAIN"))' "$SERVER_DIR/log" | wc -l)
  good=true
  if [ "$outcome" = timed_out ] && [ "$overshoot" -ge 0 ] && [ "$overshoot" -le "$tolerance_ms" ] \
    && [ "$ignored" -ge 1 ]; then
    ok_timed=$((ok_timed + 1))
  else
    good=false
  fi
  if [ "$others_ok" -eq "$others" ] && [ "$(jq .listed <<<"$f")" = true ]; then
    ok_others=$((ok_others + 1))
  else
    good=false
  fi
  [ "$violations" -eq 0 ] && ok_order=$((ok_order + 1)) || good=false
  [ "$SERVER_EXIT" = 1 ] && ok_exit=$((ok_exit + 1)) || good=false
  [ "$STOP_MS" -le "$bound_ms" ] || good=false
  # The clients' side of the rest of the cascade: the WebSockets are the hub's to close
  # (a hung hub is killed with them), the requests the gateway's to answer.
  ws_note="ws_1001=$(jq .ok <<<"$ws")/$ws_clients"
  if [ "$a" = ws_hub ]; then
    ws_note="$ws_note(hub_hung)"
  else
    ws_expected=$((ws_expected + ws_clients))
    ws_ok=$((ws_ok + $(jq .ok <<<"$ws")))
    [ "$(jq .ok <<<"$ws")" -eq "$ws_clients" ] || good=false
  fi
  http_note="unanswered=$c_lost"
  if [ "$a" = http_gateway ]; then
    http_note="$http_note(gateway_hung)"
  else
    unanswered=$((unanswered + c_lost))
    [ "$c_lost" -eq 0 ] || good=false
  fi
  [ "$overshoot" -le "$overshoot_max" ] || overshoot_max="$overshoot"
  [ "$STOP_MS" -le "$stop_max" ] || stop_max="$STOP_MS"
  verdict=FAIL
  if $good; then
    verdict=PASS
    passed=$((passed + 1))
  fi
  echo "$line outcome=$outcome duration_ms=$duration deadline_ms=$deadline" \
    "others_ok=$others_ok/$others order=$([ "$violations" -eq 0 ] && echo ok || echo BROKEN)" \
    "exit=$SERVER_EXIT $ws_note $http_note" \
    "sigterm_to_exit_ms=$STOP_MS total_ms=$(jq .total_ms <<<"$f")" \
    "bound_ms=$bound_ms $verdict"
  if ! $good; then
    jq -r '"detail: not ok: \(.not_ok | join(", ")); missing: \(.missing | join(", "));" +
      " extra: \(.extra | join(", "))", (.order_violations[] | "detail: order: \(.)")' <<<"$f"
    [ "$ignored" -ge 1 ] || echo "detail: $a never logged that it ignored the drain request"
    echo "detail: ws $ws"
    grep -h "Socket errors\|Non-2xx" "$SERVER_DIR/wrk.out" | sed "s/^ */detail: wrk: /"
  fi
done

result=FAIL
if [ "$n" -eq "${#actors[@]}" ] && [ "$passed" -eq "$n" ]; then
  result=PASS
fi
si_chaos_verdict "$result" "actors=${#actors[@]} timed_out_at_deadline=$ok_timed/$n" \
  "others_ok=$ok_others/$n order_ok=$ok_order/$n exit1=$ok_exit/$n" \
  "ws_1001=$ws_ok/$ws_expected unanswered=$unanswered" \
  "overshoot_max_ms=$overshoot_max sigterm_to_exit_max_ms=$stop_max bound_ms=$bound_ms" \
  "seconds=$(( $(date +%s) - t_start ))"
[ "$result" = PASS ]

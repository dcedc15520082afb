# shellcheck shell=bash source-path=SCRIPTDIR
# Shared helpers of the chaos scripts (scripts/chaos/*.sh, docs/chaos.md). Source it from a
# chaos script (it sources scripts/lib/{common,services,sim,webhook_receiver,verify}.sh); it
# defines functions and a few variables only. Every process it starts is stopped, and its
# work directory removed, by si_chaos_cleanup, which si_chaos_setup installs as the EXIT trap.
#
#   si_chaos_int_arg OPTION VALUE MIN MAX → VALUE if an integer in MIN..MAX, else exit 2
#   si_chaos_bad_usage MESSAGE            → MESSAGE and a --help hint on stderr, exit 2
#   si_chaos_setup NAME [MAX_SECONDS]     → CHAOS_WORK, CHAOS_NAME, CHAOS_DEADLINE_MS; traps
#   si_chaos_on_exit COMMAND...           → also run COMMAND when the script exits (first)
#   si_chaos_left_s                       → whole seconds left before CHAOS_DEADLINE_MS
#   si_chaos_wait WHAT TIMEOUT_S CMD...   → si_wait_for, bounded by the deadline too
#   si_chaos_build                        → builds stellar-insights + horizon-sim (Release)
#                                           into SI_CHAOS_BUILD_DIR; sets SI_BIN, SI_SIM_BIN
#   si_chaos_start_backend postgres|sqlite → CHAOS_DB (URL; sqlite://FILE), CHAOS_REDIS
#   si_chaos_server_env VAR=value...      → appended to CHAOS_SERVER_ENV (every later start)
#   si_chaos_start_server NAME [VAR=value...] → SERVER_PID, SERVER_URL, SERVER_DIR, listening
#   si_chaos_wait_ready TIMEOUT_S         → /health/ready answers 200
#   si_chaos_kill_server                  → kill -9, reaped
#   si_chaos_stop_server [SIGNAL]         → SERVER_EXIT (the server's exit code)
#   si_chaos_get PATH [JQ_FILTER]         → GET SERVER_URL/PATH (through jq -r when given)
#   si_chaos_register_webhook NAME TYPES_JSON → CHAOS_HOOK_ID; receiver endpoint NAME set up
#   si_chaos_loop_start NAME FILE PACE_S CMD... / si_chaos_loop_stop NAME → a paced loop
#   si_chaos_load_start FILE URL_PATH...  → GET loop on the server; one status per line
#   si_chaos_load_stop                    → ends it
#   si_chaos_ready_sample                 → "MS CODE DB CACHE INGESTOR" of /health/ready
#   si_chaos_tally FILE                   → "total ok degraded errors" (see below)
#   si_chaos_percentile P FILE            → the P-th percentile of a file of numbers
#   si_chaos_verdict PASS|FAIL FIGURES... → the one-line verdict "NAME: PASS|FAIL FIGURES"
#                                           (a run ended without one prints "FAIL aborted")
#   si_chaos_compare DB FROM TO HOOK NAME → CHAOS_FIG[...] figures; details of failures on
#                                           stdout; returns 1 when anything was lost
#
# The data scenarios (kill9, dependency-faults) share their set-up and their end:
#   si_chaos_fail MESSAGE...              → a failure to report (CHAOS_FAILURES)
#   si_chaos_data_env START_LEDGER        → server settings: ingestion from SIM_URL, webhooks
#                                           to the receiver, short retry delays
#   si_chaos_register_hook                → CHAOS_HOOK_ID: receiver endpoint "chaos"
#                                           subscribed to every event type, registered
#                                           before anything is ingested
#   si_chaos_last_ledger                  → the server's last ingested ledger (0: none)
#   si_chaos_finish TIP TIMEOUT_S         → chain at TIP, server caught up, webhooks drained,
#                                           SIGTERM (exit 0); failures recorded
#   si_chaos_judge FROM TO                → si_chaos_compare, then every failure as a
#                                           "detail:" line; CHAOS_RESULT PASS or FAIL and
#                                           CHAOS_DATA_FIGURES for the verdict line

CHAOS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
source "$CHAOS_LIB_DIR/../lib/common.sh"
# shellcheck source=../lib/services.sh
source "$SI_ROOT/scripts/lib/services.sh"
# shellcheck source=../lib/sim.sh
source "$SI_ROOT/scripts/lib/sim.sh"
# shellcheck source=../lib/webhook_receiver.sh
source "$SI_ROOT/scripts/lib/webhook_receiver.sh"
# shellcheck source=../lib/verify.sh
source "$SI_ROOT/scripts/lib/verify.sh"

CHAOS_NAME=""
CHAOS_WORK=""
CHAOS_DEADLINE_MS=0
CHAOS_EXIT_HOOKS=()
CHAOS_SERVER_ENV=()
CHAOS_DB=""
CHAOS_REDIS=""
CHAOS_TOKEN="chaos-admin-token"
CHAOS_HOOK_ID=""
SERVER_PID=""
SERVER_URL=""
SERVER_DIR=""
SERVER_EXIT=""
declare -gA CHAOS_LOOPS=()
CHAOS_VERDICT=""
CHAOS_FAILED_AT=""
CHAOS_FAILURES=()
CHAOS_RESULT=""
CHAOS_DATA_FIGURES=""
CHAOS_EVENT_TYPES='["payment.created","corridor.health_degraded","anchor.status_changed",
  "pool.liquidity_dropped","test"]'
declare -gA CHAOS_FIG=()

si_chaos_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# si_chaos_bad_usage MESSAGE: the message and a pointer to --help on stderr, exit code 2.
si_chaos_bad_usage() {
  echo "${CHAOS_NAME:-chaos}: $1" >&2
  echo "try: $0 --help" >&2
  exit 2
}

# si_chaos_int_arg OPTION VALUE MIN MAX: prints VALUE when it is a decimal integer from MIN to
# MAX, else a usage error (exit 2) naming OPTION; run it as x=$(si_chaos_int_arg ...) under
# set -e.
si_chaos_int_arg() {
  if ! [[ "$2" =~ ^[0-9]{1,9}$ ]] || [ "$((10#$2))" -lt "$3" ] || [ "$((10#$2))" -gt "$4" ]; then
    si_chaos_bad_usage "$1 must be an integer from $3 to $4, got '$2'"
  fi
  echo "$((10#$2))"
}

# si_chaos_setup NAME [MAX_SECONDS]: a work directory under /tmp, the overall deadline, and
# the EXIT/INT/TERM traps that clean everything up. KEEP_WORK=1 keeps the directory.
si_chaos_setup() {
  CHAOS_NAME="$1"
  CHAOS_DEADLINE_MS=$(( $(si_chaos_ms) + ${2:-3600} * 1000 ))
  CHAOS_WORK=$(mktemp -d "/tmp/si-chaos-$CHAOS_NAME.XXXXXX")
  chmod 755 "$CHAOS_WORK"
  trap si_chaos_cleanup EXIT
  # A signal ends the script through the EXIT trap (exit code 128 + signal number).
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # A command that fails under `set -e` ends the run: say which one, with the verdict.
  trap 'CHAOS_FAILED_AT="${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
}

# si_chaos_verdict PASS|FAIL FIGURES...: prints the one-line verdict "NAME: PASS|FAIL ...".
si_chaos_verdict() {
  CHAOS_VERDICT="$1"
  shift
  [ "$CHAOS_VERDICT" = PASS ] || CHAOS_VERDICT=FAIL  # anything but PASS is a failure
  echo "$CHAOS_NAME: $CHAOS_VERDICT $*"
}

si_chaos_on_exit() { CHAOS_EXIT_HOOKS+=("$*"); }

si_chaos_cleanup() {
  local code=$? hook
  trap - EXIT INT TERM
  set +e
  if [ -z "$CHAOS_VERDICT" ]; then
    # Ended before its verdict (a failed step, a signal): that is a failure, and says so.
    echo "detail: aborted (exit code $code)${CHAOS_FAILED_AT:+ after: $CHAOS_FAILED_AT}"
    echo "$CHAOS_NAME: FAIL aborted"
    [ "$code" != 0 ] || code=1
  fi
  for hook in "${CHAOS_EXIT_HOOKS[@]}"; do
    eval "$hook"
  done
  local loop
  for loop in "${!CHAOS_LOOPS[@]}"; do si_chaos_loop_stop "$loop"; done
  if [ -n "$SERVER_PID" ]; then
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
  fi
  si_stop_sim
  si_stop_receiver
  si_stop_services
  if [ -n "$CHAOS_WORK" ]; then
    if [ -n "${KEEP_WORK:-}" ]; then
      si_log "$CHAOS_NAME: kept $CHAOS_WORK"
    else
      rm -rf "$CHAOS_WORK"
    fi
  fi
  exit "$code"
}

# Whole seconds left before the deadline (0 when past it).
si_chaos_left_s() {
  local left=$(( (CHAOS_DEADLINE_MS - $(si_chaos_ms)) / 1000 ))
  [ "$left" -gt 0 ] || left=0
  echo "$left"
}

# si_chaos_wait WHAT TIMEOUT_S COMMAND...: si_wait_for bounded by the smaller of TIMEOUT_S and
# the time left before the deadline.
si_chaos_wait() {
  local what="$1" limit="$2" left
  shift 2
  left=$(si_chaos_left_s)
  [ "$limit" -le "$left" ] || limit="$left"
  si_wait_for "$what" "$limit" "$@"
}

# Builds what the chaos scripts run, like scripts/run does (Release, niced: the machine is
# shared). The output goes to CHAOS_WORK/build.log and is shown only when the build fails.
# si_chaos_prepare MAX_SECONDS: builds the server and the simulator, installs the webhook
# receiver, then starts the run's clock: CHAOS_DEADLINE_MS (the build is not part of the
# run) and CHAOS_STARTED_MS.
si_chaos_prepare() {
  si_log "$CHAOS_NAME: building (${SI_CHAOS_BUILD_DIR:-$SI_ROOT/build/release})"
  si_chaos_build
  si_receiver_install
  CHAOS_DEADLINE_MS=$(( $(si_chaos_ms) + $1 * 1000 ))
  CHAOS_STARTED_MS=$(si_chaos_ms)
}

si_chaos_build() {
  local dir="${SI_CHAOS_BUILD_DIR:-$SI_ROOT/build/release}" target
  for target in stellar-insights horizon-sim; do
    if ! (renice -n 10 "$BASHPID" >/dev/null; SI_BUILD_TARGET="$target" si_build "$dir" Release) \
      >"$CHAOS_WORK/build.log" 2>&1; then
      tail -30 "$CHAOS_WORK/build.log" >&2
      si_log "$CHAOS_NAME: building $target into $dir failed"
      return 1
    fi
  done
  SI_BIN="$dir/stellar-insights"
  # shellcheck disable=SC2034 # for the scenario scripts
  SI_SIM_BIN="$dir/horizon-sim"
}

# si_chaos_start_backend postgres|sqlite: PostgreSQL 15 + Redis 7 (scripts/lib/services.sh),
# or an SQLite file with the in-process cache.
si_chaos_start_backend() {
  case "$1" in
    postgres)
      si_start_services >&2
      CHAOS_DB="$SI_TEST_POSTGRES_URL"
      CHAOS_REDIS="$SI_TEST_REDIS_URL"
      ;;
    sqlite)
      CHAOS_DB="sqlite://$CHAOS_WORK/si.db"
      CHAOS_REDIS=""
      ;;
    *)
      si_log "$CHAOS_NAME: unknown backend '$1' (postgres or sqlite)"
      return 2
      ;;
  esac
}

si_chaos_server_env() { CHAOS_SERVER_ENV+=("$@"); }

# si_chaos_start_server NAME [VAR=value...]: the server on a free loopback port with a clean
# environment: CHAOS_SERVER_ENV, then the arguments (later ones win). Returns once it accepts
# connections (/health), not once it is ready.
si_chaos_start_server() {
  local name="$1" port
  shift
  SERVER_DIR="$CHAOS_WORK/server-$name"
  mkdir -p "$SERVER_DIR"
  port=$(si_free_port)
  SERVER_URL="http://127.0.0.1:$port"
  (cd "$SERVER_DIR" && exec env -i PATH="$PATH" HOME="$SERVER_DIR" HOST=127.0.0.1 PORT="$port" \
      DATABASE_URL="$CHAOS_DB" REDIS_URL="$CHAOS_REDIS" LOG_FORMAT=json \
      SHUTDOWN_REPORT_PATH="$SERVER_DIR/report.json" "${CHAOS_SERVER_ENV[@]}" "$@" \
      "$SI_BIN" 2>>"$SERVER_DIR/log") &
  SERVER_PID=$!
  si_chaos_wait "server $name listening" 30 curl -sf --max-time 2 "$SERVER_URL/health" || {
    tail -20 "$SERVER_DIR/log" >&2
    return 1
  }
}

si_chaos_ready() { curl -sf --max-time 2 -o /dev/null "$SERVER_URL/health/ready"; }

si_chaos_wait_ready() {
  si_chaos_wait "server ready" "$1" si_chaos_ready || {
    tail -20 "$SERVER_DIR/log" >&2
    return 1
  }
}

si_chaos_kill_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true  # 137: killed, as intended
  SERVER_PID=""
}

# si_chaos_stop_server [SIGNAL]: SIGTERM by default; waits for the exit (the server bounds its
# own shutdown with SHUTDOWN_HARD_TIMEOUT) and sets SERVER_EXIT.
si_chaos_stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -s "${1:-TERM}" "$SERVER_PID" 2>/dev/null
  SERVER_EXIT=0
  # shellcheck disable=SC2034 # for the scenario scripts
  wait "$SERVER_PID" || SERVER_EXIT=$?
  SERVER_PID=""
}

si_chaos_get() {
  local body
  body=$(curl -sf --max-time 5 "$SERVER_URL/$1") || return 1
  if [ -n "${2:-}" ]; then jq -r "$2" <<<"$body"; else echo "$body"; fi
}

# si_chaos_register_webhook NAME TYPES_JSON: registers RECEIVER_URL/hook/NAME through the admin
# API (ADMIN_API_TOKEN must be CHAOS_TOKEN) and gives the receiver its secret.
si_chaos_register_webhook() {
  local name="$1" types="$2" resp secret
  resp=$(curl -sf --max-time 15 -X POST -H "Authorization: Bearer $CHAOS_TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"url\":\"$RECEIVER_URL/hook/$name\",\"event_types\":$types}" \
    "$SERVER_URL/api/v1/webhooks") || {
    si_log "$CHAOS_NAME: registering webhook $name failed"
    return 1
  }
  CHAOS_HOOK_ID=$(jq -r '.id // empty' <<<"$resp")
  secret=$(jq -r '.secret // empty' <<<"$resp")
  [ -n "$CHAOS_HOOK_ID" ] && [ -n "$secret" ] && si_receiver_config "$name" "$secret" ok
}

# si_chaos_loop_start NAME FILE PACE_S COMMAND...: runs COMMAND again and again in the
# background, its output appended to FILE, PACE_S seconds apart (a pacing, not a
# synchronisation), until si_chaos_loop_stop NAME or the deadline.
si_chaos_loop_start() {
  local name="$1" file="$2" pace="$3"
  shift 3
  si_chaos_loop_stop "$name"
  local stop="$CHAOS_WORK/loop-$name.stop"
  rm -f "$stop" "$stop.done"
  (
    while [ ! -e "$stop" ] && [ "$(si_chaos_ms)" -lt "$CHAOS_DEADLINE_MS" ]; do
      "$@" >>"$file" 2>/dev/null || true
      sleep "$pace"
    done
    touch "$stop.done"
  ) &
  CHAOS_LOOPS[$name]=$!
}

# si_chaos_loop_stop NAME: ends the loop after its current round (commands in loops are
# bounded, e.g. curl --max-time 5), so every line of its file is whole; a loop that has not
# ended within 8 s is killed with its children.
si_chaos_loop_stop() {
  local name="$1" pid="${CHAOS_LOOPS[$1]:-}"
  [ -n "$pid" ] || return 0
  local stop="$CHAOS_WORK/loop-$name.stop"
  touch "$stop"
  if ! si_wait_for "the $name loop to end" 8 test -e "$stop.done"; then
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "CHAOS_LOOPS[$name]"
}

# si_chaos_load_start FILE URL_PATH...: a light read load on the server (loop "load"): one
# curl per round fetches every path on one keep-alive connection, ~20 rounds a second; each
# response's status is a line of FILE ("000" = no HTTP answer: refused, reset, or no answer
# within 5 s).
si_chaos_load_start() {
  local file="$1" p
  shift
  local -a args=()
  for p in "$@"; do args+=(-o /dev/null "$SERVER_URL$p"); done
  si_chaos_loop_start load "$file" 0.05 curl -s --max-time 5 -w '%{http_code}\n' "${args[@]}"
}

si_chaos_load_stop() { si_chaos_loop_stop load; }

# One readiness sample: "UNIX_MS HTTP_CODE DB CACHE INGESTOR" ("-" for what is not shown).
si_chaos_ready_sample() {
  local out code fields
  out=$(curl -s --max-time 3 -w '\n%{http_code}' "$SERVER_URL/health/ready")
  code=${out##*$'\n'}
  fields=$(jq -r '[.checks.db, .checks.cache, .checks.ingestor] | map(. // "-") | join(" ")' \
    <<<"${out%$'\n'*}" 2>/dev/null) || fields=""
  echo "$(si_chaos_ms) $code ${fields:-- - -}"
}

# si_chaos_tally FILE: "TOTAL OK DEGRADED ERRORS": OK = 2xx and 304, DEGRADED = 503 (the
# documented answer when a dependency does not answer within HTTP_UPSTREAM_TIMEOUT_MS),
# ERRORS = everything else (other 5xx, 4xx, no answer).
si_chaos_tally() {
  awk '{n++} /^2/ || $1 == "304" {ok++} $1 == "503" {d++}
       END {printf "%d %d %d %d\n", n, ok, d, n - ok - d}' "$1"
}

# si_chaos_percentile P FILE: nearest-rank percentile of the numbers in FILE (0 if empty).
si_chaos_percentile() {
  sort -n "$2" | awk -v p="$1" '{v[NR] = $1} END {
    if (NR == 0) {print 0; exit}
    r = int((p * NR + 99) / 100); if (r < 1) r = 1; print v[r]}'
}

# si_chaos_compare DB FROM TO HOOK_ID RECEIVER_NAME: the database against the simulator's
# truth for FROM..TO and the webhook outbox against the receiver. Fills CHAOS_FIG with
# ledgers, transactions, operations, gaps, duplicates, missing, mismatching, webhook_events,
# delivered_distinct, lost, redelivered, undelivered; prints one "detail: ..." line per figure
# that is off. Returns 1 when any of gaps, duplicates, missing, mismatching, lost, undelivered
# is not 0.
si_chaos_compare() {
  local db="$1" from="$2" to="$3" hook="$4" name="$5" dir="$CHAOS_WORK/compare"
  local name_ want got diff pe wf unfanned
  CHAOS_FIG=([gaps]=0 [duplicates]=0 [missing]=0 [mismatching]=0)
  while read -r name_ want got; do
    case "$name_" in
      ledgers | transactions | operations) CHAOS_FIG[$name_]="$got" ;;
    esac
    [ "$want" = "$got" ] && continue
    echo "detail: $name_: truth $want, database $got"
    if ! [[ "$want$got" =~ ^[0-9]+$ ]]; then
      CHAOS_FIG[mismatching]=$(( CHAOS_FIG[mismatching] + 1 ))
      continue
    fi
    case "$name_" in
      ledgers | transactions | operations)
        diff=$(( want - got ))
        if [ "$diff" -gt 0 ]; then
          if [ "$name_" = ledgers ]; then
            CHAOS_FIG[gaps]=$(( CHAOS_FIG[gaps] + diff ))
          else
            CHAOS_FIG[missing]=$(( CHAOS_FIG[missing] + diff ))
          fi
        else
          CHAOS_FIG[duplicates]=$(( CHAOS_FIG[duplicates] - diff ))
        fi
        ;;
      ledgers_outside_range) CHAOS_FIG[duplicates]=$(( CHAOS_FIG[duplicates] + got )) ;;
      ledger_gaps) [ "${CHAOS_FIG[gaps]}" -ge "$got" ] || CHAOS_FIG[gaps]="$got" ;;
      *) CHAOS_FIG[mismatching]=$(( CHAOS_FIG[mismatching] + 1 )) ;;
    esac
  done < <(si_truth_figures "$db" "$from" "$to")
  # One payment.created event per stored payment, neither more nor fewer.
  pe=$(si_payment_event_figures "$db" "$dir" 2>&1) || true
  if ! jq -e 'type == "object"' >/dev/null 2>&1 <<<"$pe"; then
    echo "detail: payment events could not be counted: $pe"
    CHAOS_FIG[mismatching]=$(( CHAOS_FIG[mismatching] + 1 ))
    pe='{"without_event": 0, "duplicates": 0, "unknown": 0}'
  fi
  if [ "$(jq '.without_event + .duplicates + .unknown' <<<"$pe")" != 0 ]; then
    echo "detail: payment events: $pe"
  fi
  CHAOS_FIG[missing]=$(( CHAOS_FIG[missing] + $(jq .without_event <<<"$pe") ))
  CHAOS_FIG[duplicates]=$(( CHAOS_FIG[duplicates] + $(jq .duplicates <<<"$pe") ))
  CHAOS_FIG[mismatching]=$(( CHAOS_FIG[mismatching] + $(jq .unknown <<<"$pe") ))
  # Every outbox event has a delivery for the hook (it subscribes to every type) and reached
  # the receiver at least once.
  wf=$(si_webhook_delivery_figures "$db" "$hook" "$name" "$dir" 2>&1) || true
  unfanned=$(si_sql "$db" "SELECT COUNT(*) FROM webhook_outbox o WHERE NOT EXISTS (SELECT 1
    FROM webhook_deliveries d WHERE d.event_id = o.id AND d.webhook_id = '$hook')" 2>&1) || true
  CHAOS_FIG[webhook_events]=$(si_sql "$db" "SELECT COUNT(*) FROM webhook_outbox" 2>&1) || true
  if ! jq -e 'type == "object"' >/dev/null 2>&1 <<<"$wf" || ! [[ "$unfanned" =~ ^[0-9]+$ ]]; then
    echo "detail: webhook deliveries could not be compared: $wf $unfanned"
    CHAOS_FIG[lost]="?"
    return 1
  fi
  CHAOS_FIG[delivered_distinct]=$(( $(jq .received <<<"$wf") - $(jq .unknown <<<"$wf") ))
  CHAOS_FIG[lost]=$(( $(jq .lost <<<"$wf") + unfanned ))
  CHAOS_FIG[redelivered]=$(jq .redelivered <<<"$wf")
  CHAOS_FIG[undelivered]=$(jq .undelivered <<<"$wf")
  if [ "${CHAOS_FIG[lost]}" != 0 ] || [ "$(jq '.unknown + .invalid + .undelivered' <<<"$wf")" != 0 ]
  then
    echo "detail: webhooks: $wf; outbox events without a delivery for the hook: $unfanned"
    comm -23 "$dir/outbox-$name" "$dir/received-$name" | head -5 | sed 's/^/detail: lost event /'
  fi
  CHAOS_FIG[mismatching]=$(( CHAOS_FIG[mismatching] + $(jq '.unknown + .invalid' <<<"$wf") ))
  local k
  for k in gaps duplicates missing mismatching lost undelivered; do
    [ "${CHAOS_FIG[$k]}" = 0 ] || return 1
  done
}

si_chaos_fail() { CHAOS_FAILURES+=("$*"); }

# si_chaos_data_env START_LEDGER: the settings the data scenarios share. Only delays differ
# from the defaults, so that a run takes minutes: ingestion polls every 100 ms and retries
# after 50..500 ms; webhooks poll every 200 ms, retry after 200..2000 ms (50 attempts), and
# a delivery in flight at a kill is claimable again after 3 s (WEBHOOK_LEASE_MS).
si_chaos_data_env() {
  si_chaos_server_env LOG_LEVEL=info ADMIN_API_TOKEN="$CHAOS_TOKEN" \
    WEBHOOK_SECRET_KEY="$(openssl rand -base64 32)" WEBHOOK_ALLOW_PRIVATE=true \
    WEBHOOK_BACKOFF_MIN_MS=200 WEBHOOK_BACKOFF_MAX_MS=2000 WEBHOOK_MAX_ATTEMPTS=50 \
    WEBHOOK_POLL_INTERVAL_MS=200 WEBHOOK_TIMEOUT_MS=2000 WEBHOOK_LEASE_MS=3000 \
    HORIZON_URL="$SIM_URL" HORIZON_RATE_LIMIT=0 INGEST_START_LEDGER="$1" \
    INGEST_POLL_INTERVAL_MS=100 INGEST_BACKOFF_MIN_MS=50 INGEST_BACKOFF_MAX_MS=500
}

# Registers the receiver's endpoint "chaos" for every event type on a server started with
# ingestion and the schedulers off, then stops that server: every payment ingested later must
# raise an event for it.
si_chaos_register_hook() {
  si_chaos_start_server setup INGEST_ENABLED=false SYNC_ENABLED=false
  si_chaos_wait_ready 30
  si_chaos_register_webhook chaos "$CHAOS_EVENT_TYPES"
  si_chaos_stop_server TERM
}

si_chaos_last_ledger() {
  si_chaos_get api/v1/ingestion/status '.last_ledger // 0' 2>/dev/null || echo 0
}

si_chaos_sim_at() {
  [ "$(curl -sf --max-time 5 "$SIM_URL/_sim/info" | jq -r .latest_ledger)" = "$1" ]
}
si_chaos_server_at() { [ "$(si_chaos_last_ledger)" = "$1" ]; }
si_chaos_drained() {
  [ "$(si_sql "$CHAOS_DB" "SELECT COUNT(*) FROM webhook_deliveries
    WHERE status <> 'delivered'")" = 0 ]
}

# si_chaos_finish TIP TIMEOUT_S: waits (each step at most TIMEOUT_S) until the simulator's
# chain has stopped at TIP, the server has ingested up to it and every webhook delivery is
# delivered; then stops the server with SIGTERM, which must exit 0.
si_chaos_finish() {
  local tip="$1" limit="$2"
  [ -n "$SERVER_PID" ] || { si_chaos_fail "no server was running at the end"; return 0; }
  if ! si_chaos_wait "the chain's last ledger $tip" "$limit" si_chaos_sim_at "$tip" \
    || ! si_chaos_wait "ingestion to ledger $tip" "$limit" si_chaos_server_at "$tip"; then
    si_chaos_fail "ingestion did not reach ledger $tip (at $(si_chaos_last_ledger))"
  fi
  if ! si_chaos_wait "webhook deliveries to drain" "$limit" si_chaos_drained; then
    si_chaos_fail "webhook deliveries not drained: $(si_sql "$CHAOS_DB" "SELECT status || '='
      || COUNT(*) FROM webhook_deliveries GROUP BY status" | paste -sd' ' -)"
  fi
  si_chaos_stop_server TERM
  [ "$SERVER_EXIT" = 0 ] || si_chaos_fail "SIGTERM at the end: exit code $SERVER_EXIT, not 0"
}

# si_chaos_judge FROM TO: compares (si_chaos_compare, hook CHAOS_HOOK_ID, endpoint "chaos"),
# prints every failure as a "detail:" line, sets CHAOS_RESULT (PASS when nothing was lost and
# nothing failed) and CHAOS_DATA_FIGURES (the data part of the verdict line).
# shellcheck disable=SC2034 # CHAOS_RESULT is for the scenario scripts
si_chaos_judge() {
  local compared=ok f
  CHAOS_RESULT=FAIL
  si_chaos_compare "$CHAOS_DB" "$1" "$2" "$CHAOS_HOOK_ID" chaos || compared=failed
  for f in "${CHAOS_FAILURES[@]}"; do echo "detail: $f"; done
  CHAOS_RESULT=PASS
  if [ "$compared" != ok ] || [ ${#CHAOS_FAILURES[@]} -gt 0 ]; then CHAOS_RESULT=FAIL; fi
  CHAOS_DATA_FIGURES="ledgers=${CHAOS_FIG[ledgers]:-0}"
  CHAOS_DATA_FIGURES+=" transactions=${CHAOS_FIG[transactions]:-0}"
  CHAOS_DATA_FIGURES+=" operations=${CHAOS_FIG[operations]:-0}"
  for f in gaps duplicates missing mismatching webhook_events delivered_distinct lost \
    redelivered; do
    CHAOS_DATA_FIGURES+=" $f=${CHAOS_FIG[$f]:-?}"
  done
}

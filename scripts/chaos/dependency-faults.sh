#!/usr/bin/env bash
# Chaos scenario dependency-faults (docs/chaos.md): while the server ingests a growing chain,
# runs its schedulers, delivers webhooks and answers a light read load, its dependencies fail
# one after the other:
#   redis_kill        Redis killed (SIGKILL), later restarted on the same port
#   redis_freeze      Redis frozen (SIGSTOP) past the cache timeouts, then SIGCONT
#   postgres_restart  PostgreSQL stopped (pg_ctl stop -m fast) mid-ingest, then started again
#   horizon_faults    every fault kind of the Horizon simulator (POST /_sim/fault)
# Each phase checks that reads kept being answered (a 503 only where a dependency the read
# needs is down, as documented), readiness showed what was down (and only then), and the
# server recovered by itself. At the end the database must equal the simulator's truth and
# every webhook event must have reached the receiver.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/chaos/dependency-faults.sh [options]
  --backend B           postgres (the only one: PostgreSQL 15 + Redis 7; default)
  --max-seconds T       wall-time bound of the whole run, build excluded (default 300)
  --redis-down-ms MS    how long Redis stays killed (default 2000)
  --freeze-ms MS        how long Redis stays frozen; more than CACHE_OP_TIMEOUT_MS and
                        HTTP_UPSTREAM_TIMEOUT_MS (default 6000)
  --pg-down-ms MS       how long PostgreSQL stays stopped (default 3000)
  --fault-count N       requests each Horizon fault kind spoils (default 3)
  --recover-timeout S   how long the server may take to recover from each fault (default 45)
  --seed S              seed of the simulated chain (default 7)
  -h, --help            this text
Prints progress on stderr, the details of anything that failed, then one verdict line:
  dependency-faults: PASS|FAIL redis_kill=reads:…,errors:0,… redis_freeze=… postgres_restart=…
  horizon_faults=… actor_restarts=… ledgers=… gaps=0 duplicates=0 missing=0 … lost=0 …
Exit code 0 on PASS, 1 on FAIL, 2 on bad usage. SI_CHAOS_BUILD_DIR (default build/release)
is where the server and simulator are built; KEEP_WORK=1 keeps the work directory.
USAGE
}

backend=postgres
max_seconds=300
redis_down_ms=2000
freeze_ms=6000
pg_down_ms=3000
fault_count=3
recover_timeout=45
seed=7

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
CHAOS_NAME=dependency-faults
while [ $# -gt 0 ]; do
  case "$1" in -h | --help) usage; exit 0 ;; esac
  [ $# -ge 2 ] || si_chaos_bad_usage "$1 needs a value (or unknown option)"
  case "$1" in
    --backend)
      [ "$2" = postgres ] || si_chaos_bad_usage \
        "--backend must be postgres (a PostgreSQL restart is one of the phases), got '$2'"
      backend="$2" ;;
    --max-seconds) max_seconds=$(si_chaos_int_arg --max-seconds "$2" 30 86400) ;;
    --redis-down-ms) redis_down_ms=$(si_chaos_int_arg --redis-down-ms "$2" 0 600000) ;;
    --freeze-ms) freeze_ms=$(si_chaos_int_arg --freeze-ms "$2" 0 600000) ;;
    --pg-down-ms) pg_down_ms=$(si_chaos_int_arg --pg-down-ms "$2" 0 600000) ;;
    --fault-count) fault_count=$(si_chaos_int_arg --fault-count "$2" 1 100) ;;
    --recover-timeout) recover_timeout=$(si_chaos_int_arg --recover-timeout "$2" 1 3600) ;;
    --seed) seed=$(si_chaos_int_arg --seed "$2" 1 999999999) ;;
    *) si_chaos_bad_usage "unknown option '$1'" ;;
  esac
  shift 2
done
for tool in jq curl openssl psql redis-cli redis-server node; do
  command -v "$tool" >/dev/null || { echo "dependency-faults: $tool is required" >&2; exit 1; }
done

# The chain grows for about as long as the phases are expected to take, then stops at its
# cap: the fixed ledger the database is compared up to.
start_ledger=1000
initial_ledgers=200
close_ms=100
expected_s=$(( 40 + (redis_down_ms + freeze_ms + pg_down_ms) / 1000 + 7 * 2 ))
max_ledgers=$(( initial_ledgers + expected_s * 1000 / close_ms ))
tip=$(( start_ledger + max_ledgers - 1 ))

si_chaos_setup dependency-faults "$max_seconds"
si_chaos_prepare "$max_seconds"
started_ms=$CHAOS_STARTED_MS

si_chaos_start_backend "$backend"
redis_conf="$SI_TEST_REDIS_DIR/redis.conf"
redis_port="${SI_TEST_REDIS_URL##*:}"
redis_pid() { cat "$SI_TEST_REDIS_DIR/redis.pid"; }
# A Redis left frozen by an aborted run could not be stopped: thaw it first.
# shellcheck disable=SC2016 # expanded when the script exits
si_chaos_on_exit 'kill -CONT "$(redis_pid)" 2>/dev/null'
si_start_sim "$SI_SIM_BIN" "$CHAOS_WORK/sim" --seed "$seed" --start-ledger "$start_ledger" \
  --ledgers "$initial_ledgers" --close-ms "$close_ms" --max-ledgers "$max_ledgers" \
  --tx-per-ledger 6 --pools 8 --assets 12
si_start_receiver "$CHAOS_WORK/receiver" --bench
si_log "dependency-faults: simulator $SIM_URL (ledgers $start_ledger..$tip), receiver $RECEIVER_URL"

# The data scenarios' settings (si_chaos_data_env) plus the schedulers every 5 s; every
# other setting is the default (CACHE_OP_TIMEOUT_MS 250, HTTP_UPSTREAM_TIMEOUT_MS 5000,
# REDIS_RECONNECT_*_MS 100..5000, HORIZON_MAX_RETRIES 3) but the circuit breaker's cooldown:
# 3 s instead of 30 s, which would only make the Horizon phase longer.
si_chaos_data_env "$start_ledger"
si_chaos_server_env HORIZON_BREAKER_COOLDOWN_MS=3000 SYNC_METRICS_INTERVAL=5 \
  SYNC_POOLS_INTERVAL=5 SYNC_TRUSTLINES_INTERVAL=5
si_chaos_register_hook

si_chaos_start_server main
si_chaos_wait_ready 30
# shellcheck disable=SC2153 # set by si_chaos_start_server
server_pid="$SERVER_PID"
reads=(/health /api/v1/corridors /api/v1/liquidity-pools /api/v1/anchors
  /api/v1/trustlines/stats /api/v1/ingestion/status /api/v1/cache/stats)

phase_results=()
fail() { si_chaos_fail "$phase: $*"; }
last_ledger() { si_chaos_last_ledger; }
ready_field() { curl -s --max-time 3 "$SERVER_URL/health/ready" | jq -r "$1" 2>/dev/null; }
cache_is() { [ "$(ready_field .checks.cache)" = "$1" ]; }
ready_is() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$SERVER_URL/health/ready")" = "$1" ]
}
ledger_past() { [ "$(last_ledger)" -gt "$1" ]; }
# hold_until START_MS DURATION_MS: keeps a dependency down for its configured time (the fault
# itself, not a synchronisation).
hold_until() {
  local left=$(( $1 + $2 - $(si_chaos_ms) ))
  [ "$left" -le 0 ] || sleep "$(awk -v ms="$left" 'BEGIN { printf "%.3f", ms / 1000 }')"
}

# phase_begin NAME: the phase's read load and readiness samples start.
phase_begin() {
  phase="$1"
  si_log "dependency-faults: phase $phase"
  phase_ledger=$(last_ledger)
  phase_dir="$CHAOS_WORK/phase-$phase"
  mkdir -p "$phase_dir"
  : >"$phase_dir/reads"
  : >"$phase_dir/ready"
  si_chaos_load_start "$phase_dir/reads" "${reads[@]}"
  si_chaos_loop_start ready "$phase_dir/ready" 0.1 si_chaos_ready_sample
}

# phase_end ALLOW_503 EXTRA: once ingestion has committed again after the recovery, stops
# the load and checks the common figures: the same server process, reads answered (503 only
# when ALLOW_503 is yes), ingestion went on. Appends
# "NAME=reads:…,errors:…,503:…,EXTRA" to phase_results.
phase_end() {
  local allow_503="$1" extra="$2" total degraded errors
  local resumed_from
  resumed_from=$(last_ledger)
  si_chaos_wait "$phase: ingestion past ledger $resumed_from" "$recover_timeout" \
    ledger_past "$resumed_from" \
    || fail "ingestion did not move on after recovery (at $(last_ledger))"
  si_chaos_loop_stop ready
  si_chaos_load_stop
  read -r total _ degraded errors < <(si_chaos_tally "$phase_dir/reads")
  [ "$total" -gt 0 ] || fail "no read was made"
  [ "$errors" = 0 ] || fail "$errors reads failed (other than 503): $(sort "$phase_dir/reads" \
    | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
  [ "$allow_503" = yes ] || [ "$degraded" = 0 ] || fail "$degraded reads answered 503"
  if ! kill -0 "$server_pid" 2>/dev/null || [ "$SERVER_PID" != "$server_pid" ]; then
    fail "the server process is gone"
  fi
  [ "$(last_ledger)" -gt "$phase_ledger" ] || fail "ingestion did not advance"
  phase_results+=("$phase=reads:$total,errors:$errors,503:$degraded,$extra")
}

# Readiness samples of the phase: "NOT_200 DB_FAIL CACHE_DEGRADED" counts.
ready_counts() {
  awk '$2 != 200 {n++} $3 == "fail" {d++} $4 == "degraded" {c++}
       END {printf "%d %d %d\n", n, d, c}' "$phase_dir/ready"
}

# cache_phase NAME HOLD_MS DOWN_FN UP_FN: a cache fault. DOWN_FN, hold HOLD_MS, UP_FN; the
# cache check must show "degraded" while Redis is unusable and "ok" after, and readiness
# stays 200 throughout (docs/storage.md: a degraded cache costs speed, not correctness).
cache_phase() {
  local name="$1" hold="$2" down="$3" up="$4" t_down t_up recover_ms="-" not200 degraded
  phase_begin "$name"
  t_down=$(si_chaos_ms)
  "$down"
  si_chaos_wait "$name: cache check degraded" "$recover_timeout" cache_is degraded \
    || fail "the cache check did not show degraded"
  hold_until "$t_down" "$hold"
  "$up"
  t_up=$(si_chaos_ms)
  if si_chaos_wait "$name: cache check ok" "$recover_timeout" cache_is ok; then
    recover_ms=$(( $(si_chaos_ms) - t_up ))
  else
    fail "the cache check did not come back to ok within ${recover_timeout}s"
  fi
  read -r not200 _ degraded < <(ready_counts)
  [ "$not200" = 0 ] || fail "/health/ready answered other than 200 $not200 times"
  [ "$degraded" -gt 0 ] || fail "no readiness sample showed the cache degraded"
  phase_end no "not_ready:$not200,cache_degraded_samples:$degraded,recover_ms:$recover_ms"
}

redis_up() { redis-cli -h 127.0.0.1 -p "$redis_port" ping; }
redis_kill() { kill -KILL "$(redis_pid)"; }
redis_restart() {
  redis-server "$redis_conf"
  si_chaos_wait "redis back" 20 redis_up
}
redis_stop() { kill -STOP "$(redis_pid)"; }
redis_cont() { kill -CONT "$(redis_pid)"; }
cache_phase redis_kill "$redis_down_ms" redis_kill redis_restart
cache_phase redis_freeze "$freeze_ms" redis_stop redis_cont

# PostgreSQL stopped mid-ingest, then started with the options it ran with (as pg_ctl restart
# does, with a down window long enough to be seen): readiness 503 while it is down, 200 after.
# Reads that need the database may answer 503 (HTTP_UPSTREAM_TIMEOUT_MS, docs/configuration.md)
# meanwhile; nothing else.
pg_data="$SI_TEST_PG_DIR/data"
pg_opts=$(sed -E 's/^[^ ]+ //; s/"//g; s/(^| )-D [^ ]+//' "$pg_data/postmaster.opts")
phase_begin postgres_restart
t_down=$(si_chaos_ms)
si_as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -m fast -w -t 60 stop >/dev/null
si_chaos_wait "readiness 503" "$recover_timeout" ready_is 503 \
  || fail "/health/ready did not answer 503 while PostgreSQL was down"
hold_until "$t_down" "$pg_down_ms"
si_as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -l "$SI_TEST_PG_DIR/server.log" -w -t 60 -o "$pg_opts" \
  start >/dev/null
t_up=$(si_chaos_ms)
recover_ms="-"
if si_chaos_wait "readiness 200" "$recover_timeout" ready_is 200; then
  recover_ms=$(( $(si_chaos_ms) - t_up ))
else
  fail "/health/ready did not come back to 200 within ${recover_timeout}s ($(ready_field -c .))"
fi
read -r not200 dbfail _ < <(ready_counts)
[ "$dbfail" -gt 0 ] || fail "no readiness sample showed the database failing"
phase_end yes "not_ready_samples:$not200,recover_ms:$recover_ms"

# Every fault kind of the simulator, one after the other, on every Horizon path; with the
# server's default retries, part of them never reach the ingestor as errors.
faults_consumed() { [ "$(curl -sf --max-time 5 "$SIM_URL/_sim/stats" | jq .faults_pending)" = 0 ]; }
errors_total() {
  curl -sf --max-time 5 "$SERVER_URL/metrics" \
    | awk '/^si_ingest_errors_total/ {s += $2} END {print s + 0}'
}
caught_up() {
  local latest
  latest=$(curl -sf --max-time 5 "$SIM_URL/_sim/info" | jq -r .latest_ledger)
  [ "$(last_ledger)" -ge "$(( latest - 2 ))" ]
}
phase_begin horizon_faults
errors_before=$(errors_total)
faults_served() {
  curl -sf --max-time 5 "$SIM_URL/_sim/stats" | jq '[.faults_injected[]] | add // 0'
}
injected_before=$(faults_served)
for kind in status_500 status_503 status_429 truncated malformed reset latency; do
  si_sim_fault "{\"kind\":\"$kind\",\"count\":$fault_count,\"retry_after_s\":1,\"latency_ms\":1500}"
  si_chaos_wait "$kind consumed" "$recover_timeout" faults_consumed \
    || fail "the $kind faults were not all requested within ${recover_timeout}s"
done
injected=$(( $(faults_served) - injected_before ))
[ "$injected" = $(( 7 * fault_count )) ] \
  || fail "$injected faults served, $(( 7 * fault_count )) queued"
caught="no"
if si_chaos_wait "ingestion to catch up" "$recover_timeout" caught_up; then caught=yes; else
  fail "ingestion did not catch up with the chain"
fi
read -r not200 _ _ < <(ready_counts)
[ "$not200" = 0 ] || fail "/health/ready answered other than 200 $not200 times"
ingest_errors=$(( $(errors_total) - errors_before ))
phase_end no "injected:$injected,ingest_errors:$ingest_errors,not_ready:$not200,caught_up:$caught"

# The end: the chain stops at its cap, the server catches up to it, webhooks drain; compare.
phase=final
actor_restarts=$(curl -sf --max-time 5 "$SERVER_URL/metrics" \
  | awk '/^si_actor_restarts_total/ {s += $2} END {print s + 0}')
si_chaos_finish "$tip" "$(si_chaos_left_s)"
si_chaos_judge "$start_ledger" "$tip"
si_chaos_verdict "$CHAOS_RESULT" "${phase_results[*]} actor_restarts=$actor_restarts" \
  "$CHAOS_DATA_FIGURES seconds=$(( ($(si_chaos_ms) - started_ms) / 1000 ))"
[ "$CHAOS_RESULT" = PASS ]

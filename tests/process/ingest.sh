#!/usr/bin/env bash
# Process-level test of ingestion and the sync schedulers against the Horizon simulator
# (docs/horizon-sim.md), on SQLite and on PostgreSQL:
#   A. a static chain is ingested whole: ledgers, transactions (failed and fee-bump ones
#      included) and operations match the simulator's ground truth exactly; the shutdown
#      report says what was ingested; a restart resumes at the cursor and writes nothing twice;
#      the schedulers' corridors, pools and trustline stats match the simulator.
#   B. every fault kind the simulator can inject (500, 429 + Retry-After, truncated body,
#      malformed JSON, a bad record, connection reset, latency) is counted and shown, then
#      ingestion recovers with no gap and no duplicate.
#   C. kill -9 of the server at random instants while the chain grows, restart each time:
#      at the end the database equals the ground truth (no gap, no duplicate).
# Usage: ingest.sh SERVER_BINARY SIM_BINARY
set -uo pipefail
if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
  echo "usage: $0 SERVER_BINARY SIM_BINARY" >&2
  exit 2
fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
SIM="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../scripts/lib/common.sh"
source "$here/../../scripts/lib/sim.sh"
source "$here/../../scripts/lib/verify.sh"
source "$here/lib.sh"

work=$(mktemp -d /tmp/si-ingest.XXXXXX)
server_pid=""
pg_db=""
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  si_stop_sim
  if [ -n "$pg_db" ]; then
    psql "$SI_TEST_POSTGRES_URL" -qAt -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1
  fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# start_server NAME DATABASE_URL [VAR=value...]: fast polls and short backoffs so the test
# runs in seconds; everything else is the default configuration.
start_server() {
  local name="$1" db="$2"
  shift 2
  run_dir="$work/$name"
  mkdir -p "$run_dir"
  port=$(si_free_port)
  base="http://127.0.0.1:$port"
  (cd "$run_dir" && exec env -i PATH="$PATH" HOME="$run_dir" LOG_FORMAT=json PORT="$port" \
      HOST=127.0.0.1 DATABASE_URL="$db" HORIZON_URL="$SIM_URL" HORIZON_RATE_LIMIT=0 \
      INGEST_START_LEDGER=1000 INGEST_POLL_INTERVAL_MS=50 INGEST_BACKOFF_MIN_MS=20 \
      INGEST_BACKOFF_MAX_MS=200 SHUTDOWN_REPORT_PATH="$run_dir/report.json" \
      "$@" "$BIN" 2>>"$run_dir/log") &
  server_pid=$!
  si_wait_for "$name listening" 20 curl -sf --max-time 2 "$base/health" \
    || { tail -20 "$run_dir/log" >&2; return 1; }
}

stop_server() {  # stop_server SIGNAL: sets exit_code
  kill -s "$1" "$server_pid" 2>/dev/null
  wait "$server_pid"
  exit_code=$?
  server_pid=""
}

status() { curl -sf --max-time 5 "$base/api/v1/ingestion/status" | jq -r ".$1"; }
at_ledger() { [ "$(status last_ledger)" = "$1" ]; }
metric() {  # metric 'name{labels}' → value (0 when absent)
  local v
  v=$(curl -sf --max-time 5 "$base/metrics" | grep -F "$1 " | grep -v '^#' | awk '{print $2}' \
    | head -1)
  echo "${v:-0}"
}

sql() { si_sql "$@"; }  # sql DB QUERY (scripts/lib/verify.sh)

# compare_with_truth LABEL DB FROM TO: the database holds exactly ledgers FROM..TO, every
# figure of scripts/lib/verify.sh's si_truth_figures equal to the simulator's truth.
compare_with_truth() {
  local label="$1" name want got
  while read -r name want got; do
    check "$label: $name = $want" [ "$got" = "$want" ]
  done < <(si_truth_figures "$2" "$3" "$4")
}

run_scenarios() {  # run_scenarios LABEL DATABASE_URL DB_FOR_SQL
  local label="$1" url="$2" db="$3"

  # --- A. a static chain, ingested whole; restart resumes; schedulers match the truth
  si_start_sim "$SIM" "$work/sim-a-$label" --seed 3 --start-ledger 1000 --ledgers 120 \
    --tx-per-ledger 6 --pools 8 --assets 12 || return 1
  start_server "$label-a1" "$url" SYNC_METRICS_INTERVAL=0.5 || return 1
  if ! si_wait_for "ledger 1119" 120 at_ledger 1119; then
    fail_now "$label: ingestion reached ledger 1119 (at $(status last_ledger))"
    tail -5 "$run_dir/log" >&2
  fi
  compare_with_truth "$label A" "$db" 1000 1119
  check "$label: status tailing, 0 behind" \
    [ "$(status state)/$(status ledgers_behind)" = "tailing/0" ]
  check "$label: cursor is ledger 1119's token" [ "$(status cursor)" = "$(( 1119 << 32 ))" ]
  check "$label: readiness shows the ingestor" \
    [ "$(curl -s "$base/health/ready" | jq -r .checks.ingestor)" = "tailing" ]
  check "$label: metrics count the operations" \
    [ "$(metric si_ingested_operations_total | cut -d. -f1)" = "$(sql "$db" 'SELECT COUNT(*) FROM operations')" ]
  # Corridors: a metrics run after the last commit sees every payment-like operation.
  local truth
  truth=$(curl -sf "$SIM_URL/_sim/truth?from=1000&to=1119")
  corridor_sum() {
    curl -sf "$base/api/v1/corridors?limit=200" | jq '[.corridors[].total_attempts] | add // 0'
  }
  local want
  want=$(jq '[.payments[].attempts] | add' <<<"$truth")
  corridors_complete() { [ "$(corridor_sum)" = "$want" ]; }
  si_wait_for "corridor attempts = $want" 30 corridors_complete
  check "$label: corridor attempts sum to the truth ($want)" [ "$(corridor_sum)" = "$want" ]
  local mismatches
  mismatches=$(curl -sf "$base/api/v1/corridors?limit=200" | jq --argjson t "$(jq .payments <<<"$truth")" \
    '[.corridors[] | select(($t[.id].attempts != .total_attempts) or ($t[.id].successful != .successful))] | length')
  check "$label: every corridor's attempts and successes match ($mismatches off)" [ "$mismatches" = 0 ]
  check "$label: pools synced (8)" \
    [ "$(curl -sf "$base/api/v1/liquidity-pools" | jq .total)" = 8 ]
  check "$label: trustline stats synced" \
    [ "$(sql "$db" 'SELECT COUNT(*) FROM trustline_stats')" = 12 ]
  stop_server TERM
  check "$label: SIGTERM exits 0 ($exit_code)" [ "$exit_code" = 0 ]
  local ing
  ing=$(jq -c '.actors[] | select(.actor == "ingestor")' "$run_dir/report.json")
  check "$label: report: ingestor ok" [ "$(jq -r .outcome <<<"$ing")" = ok ]
  check "$label: report: operations ingested" \
    [ "$(jq -r .counts.operations <<<"$ing")" = "$(jq .operations <<<"$truth")" ]
  check "$label: report: last_cursor" [ "$(jq -r .counts.last_cursor <<<"$ing")" = "$(( 1119 << 32 ))" ]
  # 120 ledgers in batches of 10: exactly 12 commits (a batch read twice would show here).
  check "$label: report: 12 batches committed" [ "$(jq -r .counts.batches <<<"$ing")" = 12 ]
  for a in sync_metrics sync_pools sync_trustlines; do
    check "$label: report: $a ok" \
      [ "$(jq -r ".actors[] | select(.actor == \"$a\") | .outcome" "$run_dir/report.json")" = ok ]
  done
  start_server "$label-a2" "$url" || return 1
  tailing() { [ "$(status state)" = tailing ]; }
  si_wait_for "tailing after restart" 20 tailing
  check "$label: restart resumes at ledger 1119" [ "$(status last_ledger)" = 1119 ]
  compare_with_truth "$label A restart" "$db" 1000 1119
  stop_server TERM
  si_stop_sim

  # --- B. faults while the chain grows: counted, shown, recovered from
  sql "$db" 'DELETE FROM operations; DELETE FROM transactions; DELETE FROM ledgers;
             DELETE FROM ingestion_cursor; DELETE FROM ingestion_state' >/dev/null
  si_start_sim "$SIM" "$work/sim-b-$label" --seed 5 --start-ledger 1000 --ledgers 20 \
    --close-ms 40 --max-ledgers 600 --tx-per-ledger 4 || return 1
  start_server "$label-b" "$url" HORIZON_MAX_RETRIES=0 SYNC_ENABLED=false || return 1
  started() { [ "$(status last_ledger)" != null ]; }
  si_wait_for "ingestion started" 20 started
  local spec kind path counted before
  errors_of() {  # errors_of KIND (empty = all kinds) → the ingestor's error count
    curl -sf "$base/metrics" | awk -v k="$1" '/^si_ingest_errors_total/ {
      if (k == "" || index($1, "kind=\"" k "\"")) s += $2 } END {print s + 0}'
  }
  faults_consumed() {
    [ "$(curl -sf "$SIM_URL/_sim/stats" | jq .faults_pending)" = 0 ]
  }
  # Faults on /operations and /transactions first: those are only requested while new
  # ledgers keep closing; /ledgers is polled even when caught up.
  for spec in status_500:/operations:http_status bad_record:/operations:malformed \
              truncated:/transactions: status_429:/ledgers:http_status \
              malformed:/ledgers:malformed reset:/ledgers:; do
    IFS=: read -r kind path counted <<<"$spec"
    # One fault at a time: the previous one's requests are all served before this one.
    si_wait_for "previous faults consumed" 30 faults_consumed
    before=$(errors_of "$counted")
    si_sim_fault "{\"kind\":\"$kind\",\"count\":2,\"path\":\"$path\",\"retry_after_s\":1}"
    more_errors() { [ "$(errors_of "$counted")" -gt "$before" ]; }
    if si_wait_for "$kind counted" 30 more_errors; then
      check "$label: fault $kind on $path counted as an ingestion error${counted:+ (kind=$counted)}" true
    else
      fail_now "$label: fault $kind on $path counted as an ingestion error${counted:+ (kind=$counted)}"
    fi
    check "$label: $kind shown as last_error" [ "$(status last_error)" != null ]
  done
  si_sim_fault '{"kind":"latency","count":5,"latency_ms":300,"path":"/ledgers"}'
  if ! si_wait_for "ledger 1599" 120 at_ledger 1599; then
    fail_now "$label: recovered to ledger 1599 (at $(status last_ledger))"
  fi
  compare_with_truth "$label B" "$db" 1000 1599
  stop_server TERM
  check "$label: B exits 0 ($exit_code)" [ "$exit_code" = 0 ]
  si_stop_sim

  # --- C. kill -9 at random instants while the chain grows
  sql "$db" 'DELETE FROM operations; DELETE FROM transactions; DELETE FROM ledgers;
             DELETE FROM ingestion_cursor; DELETE FROM ingestion_state' >/dev/null
  si_start_sim "$SIM" "$work/sim-c-$label" --seed 9 --start-ledger 1000 --ledgers 50 \
    --close-ms 25 --max-ledgers 400 --tx-per-ledger 3 || return 1
  local i kills=6
  for i in $(seq 1 $kills); do
    start_server "$label-c$i" "$url" SYNC_ENABLED=false INGEST_BATCH_LEDGERS=$(( (RANDOM % 5) + 1 )) \
      || return 1
    # The kill instant is the chaos being tested, not a synchronisation: random in 0.2..1.2 s.
    sleep "0.$(( (RANDOM % 10) + 2 ))"
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null
    server_pid=""
  done
  start_server "$label-c-final" "$url" SYNC_ENABLED=false || return 1
  if ! si_wait_for "ledger 1399" 120 at_ledger 1399; then
    fail_now "$label: caught up to ledger 1399 after $kills kills (at $(status last_ledger))"
  fi
  compare_with_truth "$label C after $kills kill -9" "$db" 1000 1399
  stop_server TERM
  si_stop_sim
}

run_scenarios sqlite "sqlite://$work/si.db" "$work/si.db"

if [ -z "${SI_TEST_POSTGRES_URL:-}" ]; then
  fail_now "SI_TEST_POSTGRES_URL is set (run via scripts/test)"
else
  pg_db="si_ingest_$$"
  psql "$SI_TEST_POSTGRES_URL" -qAt -c "CREATE DATABASE $pg_db" >/dev/null
  pg_url="${SI_TEST_POSTGRES_URL%/*}/$pg_db"
  run_scenarios postgres "$pg_url" "$pg_url"
fi
finish ingest

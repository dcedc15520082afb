#!/usr/bin/env bash
# Chaos scenario kill9 (docs/chaos.md): the server is killed with SIGKILL N times at random
# instants while it ingests a growing chain from the Horizon simulator and delivers webhooks,
# and restarted on the same database each time. At the end the database must equal the
# simulator's ground truth (no gap, no duplicate, nothing missing or different) and every
# webhook event of the outbox must have reached the receiver at least once.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/chaos/kill9.sh [options]
  --kills N             kill -9 / restart cycles (default 50)
  --backend B           postgres (PostgreSQL 15 + Redis 7 as the cache; default) or sqlite
                        (an SQLite file and the in-process cache)
  --seed S              seed of the kill instants, batch sizes and simulated chain (default:
                        random, printed); the same seed replays the same schedule
  --max-seconds T       wall-time bound of the whole run, build excluded (default 600)
  --min-interval-ms MS  shortest wait between ready and kill (default 200)
  --max-interval-ms MS  longest wait between ready and kill (default 3000)
  --ready-timeout S     how long one restart may take to answer /health/ready 200 (default 30)
  --finish-timeout S    time kept for the final catch-up and webhook drain; the kills stop
                        early (and the run fails) if less than this is left (default 120)
  -h, --help            this text
Prints progress on stderr, the details of anything that failed, then one verdict line:
  kill9: PASS|FAIL kills=… ledgers=… operations=… gaps=0 duplicates=0 missing=0 …
Exit code 0 on PASS, 1 on FAIL, 2 on bad usage. SI_CHAOS_BUILD_DIR (default build/release)
is where the server and simulator are built; KEEP_WORK=1 keeps the work directory.
USAGE
}

kills=50
backend=postgres
seed=""
max_seconds=600
min_interval=200
max_interval=3000
ready_timeout=30
finish_timeout=120

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
CHAOS_NAME=kill9
while [ $# -gt 0 ]; do
  case "$1" in -h | --help) usage; exit 0 ;; esac
  [ $# -ge 2 ] || si_chaos_bad_usage "$1 needs a value (or unknown option)"
  case "$1" in
    --kills) kills=$(si_chaos_int_arg --kills "$2" 1 10000) ;;
    --backend)
      case "$2" in
        postgres | sqlite) backend="$2" ;;
        *) si_chaos_bad_usage "--backend is postgres or sqlite, got '$2'" ;;
      esac
      ;;
    --seed) seed=$(si_chaos_int_arg --seed "$2" 0 999999999) ;;
    --max-seconds) max_seconds=$(si_chaos_int_arg --max-seconds "$2" 10 86400) ;;
    --min-interval-ms) min_interval=$(si_chaos_int_arg --min-interval-ms "$2" 0 600000) ;;
    --max-interval-ms) max_interval=$(si_chaos_int_arg --max-interval-ms "$2" 0 600000) ;;
    --ready-timeout) ready_timeout=$(si_chaos_int_arg --ready-timeout "$2" 1 3600) ;;
    --finish-timeout) finish_timeout=$(si_chaos_int_arg --finish-timeout "$2" 10 86400) ;;
    *) si_chaos_bad_usage "unknown option '$1'" ;;
  esac
  shift 2
done
[ "$min_interval" -le "$max_interval" ] || si_chaos_bad_usage \
  "--min-interval-ms ($min_interval) exceeds --max-interval-ms ($max_interval)"
[ -n "$seed" ] || seed=$(( $(date +%s%N) % 1000000000 ))
for tool in jq curl openssl psql sqlite3 node; do
  command -v "$tool" >/dev/null || { echo "kill9: $tool is required" >&2; exit 1; }
done

# The schedule comes from the seed alone, drawn before anything else uses $RANDOM.
RANDOM=$seed
intervals=()
batches=()
for ((i = 1; i <= kills; i++)); do
  intervals[i]=$(( min_interval + (RANDOM * 32768 + RANDOM) % (max_interval - min_interval + 1) ))
  batches[i]=$(( RANDOM % 5 + 1 ))
done
sim_seed=$(( seed % 1000000 + 1 ))
# The chain grows through the expected kill phase (a ledger every close_ms; ~600 ms per
# restart), then stops at its cap, the fixed ledger the database is compared up to.
start_ledger=1000
initial_ledgers=300
close_ms=100
max_ledgers=$(( initial_ledgers + kills * ((min_interval + max_interval) / 2 + 600) / close_ms ))
tip=$(( start_ledger + max_ledgers - 1 ))

si_chaos_setup kill9 "$max_seconds"
echo "kill9: seed=$seed kills=$kills backend=$backend (replay: scripts/chaos/kill9.sh" \
  "--seed $seed --kills $kills --backend $backend)"
si_chaos_prepare "$max_seconds"
started_ms=$CHAOS_STARTED_MS

si_chaos_start_backend "$backend"
si_start_sim "$SI_SIM_BIN" "$CHAOS_WORK/sim" --seed "$sim_seed" --start-ledger "$start_ledger" \
  --ledgers "$initial_ledgers" --close-ms "$close_ms" --max-ledgers "$max_ledgers" \
  --tx-per-ledger 6
si_start_receiver "$CHAOS_WORK/receiver" --bench
si_log "kill9: simulator $SIM_URL (ledgers $start_ledger..$tip), receiver $RECEIVER_URL"

si_chaos_data_env "$start_ledger"
si_chaos_server_env SYNC_ENABLED=false
si_chaos_register_hook

restarts="$CHAOS_WORK/restart_ms"
: >"$restarts"
si_chaos_start_server run-0
si_chaos_wait_ready "$ready_timeout"
done_kills=0
for ((i = 1; i <= kills; i++)); do
  if [ "$(si_chaos_left_s)" -le "$finish_timeout" ]; then
    si_chaos_fail "time budget: only $done_kills of $kills kills fit in --max-seconds $max_seconds"
    break
  fi
  # The wait is the chaos being tested (a random instant), not a synchronisation.
  sleep "$(awk -v ms="${intervals[i]}" 'BEGIN { printf "%.3f", ms / 1000 }')"
  at=$(si_chaos_last_ledger)
  si_chaos_kill_server
  done_kills=$i
  t0=$(si_chaos_ms)
  if ! si_chaos_start_server "run-$i" INGEST_BATCH_LEDGERS="${batches[i]}" \
    || ! si_chaos_wait_ready "$ready_timeout"; then
    si_chaos_fail "restart $i did not become ready within ${ready_timeout}s"
    si_chaos_kill_server
    break
  fi
  echo "$(( $(si_chaos_ms) - t0 ))" >>"$restarts"
  si_log "kill9: kill $i/$kills after ${intervals[i]} ms (ledger $at)," \
    "ready in $(tail -1 "$restarts") ms"
done

# The end: the chain stops at its cap, the server catches up to it, webhooks drain; compare.
si_chaos_finish "$tip" "$finish_timeout"
si_chaos_judge "$start_ledger" "$tip"
si_chaos_verdict "$CHAOS_RESULT" "kills=$done_kills backend=$backend seed=$seed" \
  "$CHAOS_DATA_FIGURES restart_p50_ms=$(si_chaos_percentile 50 "$restarts")" \
  "restart_p99_ms=$(si_chaos_percentile 99 "$restarts")" \
  "seconds=$(( ($(si_chaos_ms) - started_ms) / 1000 ))"
[ "$CHAOS_RESULT" = PASS ]

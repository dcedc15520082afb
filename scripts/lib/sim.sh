# Starts and stops the Horizon simulator (tools/horizon_sim, docs/horizon-sim.md) for tests,
# benches and chaos scripts. Source scripts/lib/common.sh first.
#   si_start_sim BINARY DIR [sim args...]  → sets SIM_PID, SIM_URL (http://127.0.0.1:PORT)
#   si_stop_sim                             → SIGTERM, then SIGKILL after 5 s

SIM_PID=""
SIM_URL=""

si_start_sim() {
  local bin="$1" dir="$2"
  shift 2
  mkdir -p "$dir"
  rm -f "$dir/sim.port"
  "$bin" --host 127.0.0.1 --port 0 --port-file "$dir/sim.port" "$@" \
    >"$dir/sim.out" 2>"$dir/sim.log" &
  SIM_PID=$!
  si_wait_for "horizon-sim port" 15 test -s "$dir/sim.port" || {
    cat "$dir/sim.log" >&2
    return 1
  }
  SIM_URL="http://127.0.0.1:$(cat "$dir/sim.port")"
}

si_stop_sim() {
  [ -n "$SIM_PID" ] || return 0
  kill -TERM "$SIM_PID" 2>/dev/null
  local i
  for i in $(seq 1 100); do
    kill -0 "$SIM_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$SIM_PID" 2>/dev/null
  wait "$SIM_PID" 2>/dev/null || true  # its exit status is not ours
  SIM_PID=""
}

# si_sim_truth FROM TO FIELD: one figure of the simulator's ground truth for ledgers FROM..TO.
si_sim_truth() {
  curl -sf --max-time 10 "$SIM_URL/_sim/truth?from=$1&to=$2" | jq -r ".$3"
}

# si_sim_fault JSON: queues a fault (see docs/horizon-sim.md).
si_sim_fault() {
  curl -sf --max-time 5 -X POST -H 'Content-Type: application/json' -d "$1" "$SIM_URL/_sim/fault" \
    >/dev/null
}

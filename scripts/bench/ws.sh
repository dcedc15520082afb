#!/usr/bin/env bash
# WebSocket fan-out bench (not a test): N clients on /ws subscribed to one channel, one
# broadcast at a time through the test-only route POST /api/v1/test/broadcast
# (HTTP_TEST_ROUTES=true, never in production), then SIGTERM. Prints trigger-to-delivery
# p50/p99 over all clients, the server's RSS per idle connection (VmRSS after connecting
# minus before, / N), and SIGTERM-to-all-closed, against the targets:
#   p99 <= 50 ms at 10k clients, <= 16 KiB RSS per idle connection,
#   every client closed with 1001 within SHUTDOWN_WS_GRACE_MS + 200 ms of SIGTERM.
# The clients are WORKERS Node processes (Node's `ws`, tests/ws_e2e/bench.mjs) on the same
# machine: their processing of the messages (and their share of the CPU) is part of the
# measured latency.
#   scripts/bench/ws.sh [CLIENTS=10000] [GRACE_MS=500] [ROUNDS=5] [WORKERS=2]
# SI_BIN=path/to/stellar-insights skips the release build.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
clients="${1:-10000}"
grace="${2:-500}"
rounds="${3:-5}"
workers="${4:-2}"

# Each client is a socket in both processes: raise the soft limit as far as allowed.
want=$(( clients + 1024 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  echo "ulimit -Hn is $hard: at most $(( hard - 1024 )) clients here" >&2
  exit 1
fi
ulimit -n "$want"

if [ -z "${SI_BIN:-}" ]; then
  si_install_deps
  SI_BUILD_TARGET=stellar-insights si_build "$SI_ROOT/build/release" Release >/dev/null
  SI_BIN="$SI_ROOT/build/release/stellar-insights"
fi
e2e="$SI_ROOT/tests/ws_e2e"
if [ ! -f "$e2e/node_modules/ws/package.json" ]; then
  npm ci --prefix "$e2e" --no-audit --no-fund --loglevel=error >/dev/null
fi

dir=$(mktemp -d /tmp/si-bench-ws.XXXXXX)
server_pid=""
trap '[ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null; rm -rf "$dir"' EXIT
port=$(si_free_port)
(cd "$dir" && exec env -i PATH="$PATH" HOME="$dir" HOST=127.0.0.1 PORT="$port" \
    DATABASE_URL="sqlite://$dir/si.db" LOG_LEVEL=warn SHUTDOWN_REPORT_PATH="$dir/report.json" \
    HTTP_TEST_ROUTES=true INGEST_ENABLED=false SYNC_ENABLED=false \
    WS_MAX_CONNECTIONS=$(( clients + 100 )) SHUTDOWN_WS_GRACE_MS="$grace" \
    SHUTDOWN_WS_TIMEOUT=30 SHUTDOWN_HARD_TIMEOUT=60 "$SI_BIN" 2>"$dir/log") &
server_pid=$!
si_wait_for "server" 30 curl -sf "http://127.0.0.1:$port/health"

node "$e2e/bench.mjs" "$port" "$server_pid" "$clients" "$grace" "$rounds" "$workers" \
  >"$dir/out.json"
code=0
wait "$server_pid" || code=$?
server_pid=""
r="$dir/out.json"
hub=$(jq -c '.actors[] | select(.actor=="ws_hub") | {outcome, duration_ms, counts}' \
  "$dir/report.json")
limit=$(( grace + 200 ))
echo "binary:                      $SI_BIN"
echo "clients:                     $clients in $workers Node processes (connected in $(jq .connect_ms "$r") ms)"
jq -r '.rounds | to_entries[] | "broadcast \(.key + 1):                 queued \(.value.queued) (POST answered after \(.value.queued_ms * 10 | round / 10) ms), delivered \(.value.delivered), p50 \(.value.p50 * 10 | round / 10) ms, p99 \(.value.p99 * 10 | round / 10) ms, max \(.value.max * 10 | round / 10) ms"' "$r"
echo "fan-out p99 (median round):  $(jq '.p99_median_round_ms * 10 | round / 10' "$r") ms (target <= 50 ms at 10k)"
echo "hub queueing, per broadcast: $(jq '.hub_fanout_mean_ms * 10 | round / 10' "$r") ms mean (si_ws_fanout_seconds; the rest is writing and the clients)"
echo "server RSS:                  $(jq .rss_before_kib "$r") KiB -> $(jq .rss_after_kib "$r") KiB"
echo "RSS per idle connection:     $(jq '.rss_per_connection_kib * 10 | round / 10' "$r") KiB (target <= 16 KiB)"
echo "server_shutdown received:    $(jq .notified "$r") of $clients ($(jq '.sigterm_to_first_shutdown_ms | round' "$r")..$(jq '.sigterm_to_last_shutdown_ms | round' "$r") ms after SIGTERM)"
echo "shutdown -> close, shortest: $(jq '.shutdown_to_close_min_ms | round' "$r") ms (grace $grace)"
echo "closed with 1001:            $(jq .closed_1001 "$r") of $clients"
echo "SIGTERM -> all closed:       $(jq '.sigterm_to_all_closed_ms | round' "$r") ms (target <= $limit ms = grace $grace + 200)"
echo "ws_hub report:               $hub"
echo "server exit code:            $code"

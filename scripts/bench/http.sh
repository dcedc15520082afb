#!/usr/bin/env bash
# HTTP throughput: GET /api/v1/corridors served from the cache, against nginx serving the
# same bytes as a static file, in the same run, one server thread / one worker each.
#   scripts/bench/http.sh [DURATION_S=10] [CONNECTIONS=64] [WRK_THREADS=1]
# One wrk thread by default: on a 2-core machine that leaves one core to the server's one
# io thread (and to nginx's one worker), so neither side steals the other's core.
# Prints req/s and p99 of both and the ratio (target: stellar-insights >= 0.9x nginx).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$SI_ROOT/scripts/lib/bench.sh"
duration="${1:-10}"
conns="${2:-64}"
wrk_threads="${3:-1}"
si_bench_setup
trap 'si_bench_stop_server; si_bench_stop_nginx; rm -rf "$BENCH_DIR"' EXIT

# Seed: start once for the schema, stop, insert 50 corridors, start again.
si_bench_start_server http HTTP_THREADS=1 ACTOR_THREADS=1
si_bench_stop_server
si_bench_seed_corridors "$SERVER_DIR/si.db" 50
si_bench_start_server http HTTP_THREADS=1 ACTOR_THREADS=1
url="http://127.0.0.1:$SERVER_PORT/api/v1/corridors"
curl -sf "$url" >"$BENCH_DIR/corridors.json"   # warms the cache; the same bytes for nginx
bytes=$(wc -c <"$BENCH_DIR/corridors.json")
si_bench_start_nginx "$BENCH_DIR/corridors.json" /api/v1/corridors

run() { wrk -t"$wrk_threads" -c"$conns" -d"${duration}s" --latency "$1" | si_wrk_figures; }
read -r si_rps si_p99 < <(run "$url")
read -r ng_rps ng_p99 < <(run "http://127.0.0.1:$NGINX_PORT/api/v1/corridors")
echo "body: $bytes bytes; wrk -t$wrk_threads -c$conns -d${duration}s; one thread/worker each"
printf '%-18s %12s req/s   p99 %8s ms\n' stellar-insights "$si_rps" "$si_p99"
printf '%-18s %12s req/s   p99 %8s ms\n' nginx "$ng_rps" "$ng_p99"
awk -v a="$si_rps" -v b="$ng_rps" 'BEGIN {printf "ratio: %.2fx nginx (target >= 0.90x)\n", a / b}'

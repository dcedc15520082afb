#!/usr/bin/env bash
# Webhook delivery throughput: N events (default 10,000) wait in the outbox of a fresh SQLite
# database for one webhook, behind WARMUP (default 2,000) older ones that warm up the
# receiver's JIT and the connections; the release server starts and its dispatcher claims,
# signs, POSTs and records them all. Prints deliveries/s of the N from their first POST to
# the last attempt recorded (delivered in the database), and their POST rate alone. Receivers:
#   node  (default): tests/webhooks_e2e/receiver.mjs --bench, which verifies every signature
#         with the `standardwebhooks` package (one Node process: its CPU is part of the figure);
#   nginx: one nginx worker answering 204 without verifying (the dispatcher's own ceiling).
# Target: >= 5,000 deliveries/s.
#   scripts/bench/webhooks.sh [EVENTS=10000] [node|nginx]   (SI_BENCH_BUILD=dir: build there)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$SI_ROOT/scripts/lib/bench.sh"
source "$SI_ROOT/scripts/lib/webhook_receiver.sh"
events="${1:-10000}"
receiver="${2:-node}"
warmup="${WARMUP:-2000}"
case "$receiver" in
  node | nginx) ;;
  *) echo "usage: $0 [EVENTS] [node|nginx]" >&2; exit 2 ;;
esac
# si_bench_setup, with the build directory overridable (SI_BENCH_BUILD) so that a bench can
# run beside another one building build/release.
SI_PACKAGES+=("${SI_BENCH_PACKAGES[@]}")
si_install_deps
SI_BUILD_TARGET=stellar-insights si_build "${SI_BENCH_BUILD:-$SI_ROOT/build/release}" Release \
  >/dev/null
SI_BIN="${SI_BENCH_BUILD:-$SI_ROOT/build/release}/stellar-insights"
BENCH_DIR=$(mktemp -d /tmp/si-bench.XXXXXX)
chmod 755 "$BENCH_DIR"  # nginx workers run as an unprivileged user
NGINX_PID=""
cleanup() {
  si_bench_stop_server
  si_stop_receiver
  [ -z "$NGINX_PID" ] || si_bench_stop_nginx
  rm -rf "$BENCH_DIR"
}
trap cleanup EXIT
token="bench-token"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

if [ "$receiver" = node ]; then
  si_receiver_install
  si_start_receiver "$BENCH_DIR/receiver" --bench
  hook_url="$RECEIVER_URL/hook/bench"
else
  mkdir -p "$BENCH_DIR/nginx/logs"
  NGINX_PORT=$(si_free_port)
  cat >"$BENCH_DIR/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $BENCH_DIR/nginx/nginx.pid;
error_log $BENCH_DIR/nginx/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /hook/ { return 204; }
  }
}
CONF
  nginx -p "$BENCH_DIR/nginx" -c "$BENCH_DIR/nginx/nginx.conf" &
  NGINX_PID=$!
  si_wait_for nginx 10 curl -sf -X POST "http://127.0.0.1:$NGINX_PORT/hook/bench"
  hook_url="http://127.0.0.1:$NGINX_PORT/hook/bench"
fi

# One webhook through the API (schema, sealed secret), then the events written while the
# server is stopped, so that the run measures delivery alone.
settings=(ADMIN_API_TOKEN="$token" WEBHOOK_ALLOW_PRIVATE=true INGEST_ENABLED=false
  SYNC_ENABLED=false WEBHOOK_SECRET_KEY="$(openssl rand -base64 32)" WEBHOOK_CONCURRENCY=64
  WEBHOOK_PER_DESTINATION=64 WEBHOOK_POLL_INTERVAL_MS=50)
si_bench_start_server bench "${settings[@]}"
created=$(curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d "{\"url\":\"$hook_url\",\"event_types\":[\"payment.created\"]}" \
  "http://127.0.0.1:$SERVER_PORT/api/v1/webhooks")
hook_id=$(jq -r .id <<<"$created")
if [ "$receiver" = node ]; then
  si_receiver_config bench "$(jq -r .secret <<<"$created")" ok
fi
si_bench_stop_server
db="$SERVER_DIR/si.db"
t=$(now_ms)
sqlite3 "$db" <<SQL
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $events + $warmup)
INSERT INTO webhook_outbox (id, type, payload, created_at, dispatched_at)
SELECT CASE WHEN i <= $warmup THEN printf('msg_WARM%018d', i) ELSE printf('msg_BENCH%017d', i) END,
  'payment.created',
  printf('{"type":"payment.created","timestamp":"2026-01-01T00:00:00.000Z","data":{"amount":'
    || '"1.2345678","corridor_id":"XLM:native->USDC:GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHON'
    || 'UCEOASW7QC7OX2H","created_at":%d,"destination_asset":"USDC:GBRPYHIL2CI3FNQ4BXLFMNDLFJ'
    || 'UNPU2HY3ZMFSHONUCEOASW7QC7OX2H","from":"GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7L'
    || 'BNVKOCCWN7","id":"%d","ledger":%d,"source_amount":"0.1234567","source_asset":"XLM:nati'
    || 've","to":"GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H","transaction_hash"'
    || ':"%064d","type":"path_payment_strict_send"}}', $t, 4294967296000 + i, 1000 + i / 10, i),
  $t - CASE WHEN i <= $warmup THEN 1000 ELSE 0 END, $t
FROM n;
INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, status, attempts,
                                next_attempt_at, created_at, updated_at)
SELECT '$hook_id', id, type, 'pending', 0, created_at, created_at, created_at
FROM webhook_outbox;
COMMIT;
SQL
si_log "queued $warmup + $events events ($(sqlite3 "$db" "SELECT AVG(LENGTH(payload)) FROM webhook_outbox" \
  | cut -d. -f1)-byte bodies) for $hook_url"

delivered() { sqlite3 "$db" "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'"; }
all_delivered() { [ "$(delivered)" = "$(( events + warmup ))" ]; }
# Restarted on the same database: the dispatcher finds the queue at start.
(cd "$SERVER_DIR" && exec env -i PATH="$PATH" HOME="$SERVER_DIR" HOST=127.0.0.1 \
    PORT="$SERVER_PORT" DATABASE_URL="sqlite://$db" LOG_LEVEL=warn "${settings[@]}" \
    "$SI_BIN" 2>>"$SERVER_DIR/log") &
SERVER_PID=$!
si_wait_for "$warmup + $events deliveries recorded" 600 all_delivered
t_done=$(now_ms)
read -r first_post last_post attempts <<<"$(sqlite3 -separator ' ' "$db" \
  "SELECT MIN(a.attempted_at), MAX(a.attempted_at), COUNT(*) FROM webhook_attempts a
   JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.event_id LIKE 'msg_BENCH%'")"
rate=$(awk -v n="$events" -v ms=$(( t_done - first_post )) 'BEGIN { printf "%.0f", n * 1000 / ms }')
post_rate=$(awk -v n="$events" -v ms=$(( last_post - first_post )) \
  'BEGIN { printf "%.0f", (n - 1) * 1000 / (ms > 0 ? ms : 1) }')
echo "webhook deliveries ($receiver receiver, SQLite, WEBHOOK_CONCURRENCY=64, WEBHOOK_PER_DESTINATION=64):"
echo "  $events events (after $warmup warm-up ones), $attempts attempts, first POST to last" \
  "recorded: $(( t_done - first_post )) ms"
echo "  deliveries/s (POST + record): $rate   (POSTs alone: $post_rate/s)   target >= 5000"
if [ "$receiver" = node ]; then
  stats=$(si_receiver_get "_stats?name=bench")
  echo "  receiver: $(jq .requests <<<"$stats") requests, $(jq .verified <<<"$stats") verified" \
    "(standardwebhooks), $(jq .invalid <<<"$stats") invalid, $(jq .distinct <<<"$stats") distinct ids," \
    "$(jq .max_in_progress <<<"$stats") at once at most"
fi

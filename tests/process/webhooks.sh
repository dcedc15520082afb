#!/usr/bin/env bash
# Process-level test of webhooks (docs/webhooks.md) against the real binary, on SQLite and on
# PostgreSQL, with a Node receiver (tests/webhooks_e2e/receiver.mjs) that verifies every
# delivery's signature with the `standardwebhooks` package, independently of our code:
#   A. registration refusals with WEBHOOK_ALLOW_PRIVATE=false: SSRF (a name resolving to
#      127.0.0.1, loopback, private and metadata literals), scheme, userinfo, numeric hosts,
#      unknown event types, filters, JSON, auth, malformed and unknown ids.
#   B. the API (201 with the secret once; list, get, deliveries, delete), signed deliveries,
#      retries on the configured backoff schedule under one webhook-id, dead letter after
#      WEBHOOK_MAX_ATTEMPTS, 410 disables the webhook, metrics (promtool), secrets sealed in
#      the database and never in the log, SIGTERM waiting for a slow delivery.
#   C. kill -9 of the server, several times, while payments ingested from the Horizon
#      simulator and test events flow: afterwards every ingested payment has exactly one
#      payment.created event, every outbox event reached the receiver (at least once, its
#      event id as webhook-id), filters held, and nothing the receiver got is unknown.
# Usage: webhooks.sh SERVER_BINARY SIM_BINARY
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
source "$here/../../scripts/lib/webhook_receiver.sh"
source "$here/../../scripts/lib/verify.sh"
source "$here/lib.sh"
for tool in jq curl openssl; do
  command -v "$tool" >/dev/null || { echo "webhooks: $tool is required" >&2; exit 1; }
done

work=$(mktemp -d /tmp/si-webhooks.XXXXXX)
server_pid=""
poster_pid=""
pg_db=""
cleanup() {
  [ -n "$poster_pid" ] && kill -KILL "$poster_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  si_stop_sim
  si_stop_receiver
  if [ -n "$pg_db" ]; then
    psql "$SI_TEST_POSTGRES_URL" -qAt -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1
  fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

token="webhooks-test-token"
key=$(openssl rand -base64 32)
si_receiver_install || { echo "webhooks: cannot install the receiver" >&2; exit 1; }
si_start_receiver "$work/receiver" || exit 1
rport="${RECEIVER_URL##*:}"

# start_server NAME DATABASE_URL [VAR=value...]: short backoffs, leases and polls so the test
# runs in seconds; ingestion and the schedulers off unless asked for.
start_server() {
  local name="$1" db="$2"
  shift 2
  run_dir="$work/$name"
  mkdir -p "$run_dir"
  port=$(si_free_port)
  base="http://127.0.0.1:$port"
  (cd "$run_dir" && exec env -i PATH="$PATH" HOME="$run_dir" LOG_FORMAT=json LOG_LEVEL=debug \
      PORT="$port" HOST=127.0.0.1 DATABASE_URL="$db" ADMIN_API_TOKEN="$token" \
      WEBHOOK_SECRET_KEY="$key" WEBHOOK_ALLOW_PRIVATE=true WEBHOOK_BACKOFF_MIN_MS=200 \
      WEBHOOK_BACKOFF_MAX_MS=400 WEBHOOK_MAX_ATTEMPTS=3 WEBHOOK_POLL_INTERVAL_MS=100 \
      WEBHOOK_TIMEOUT_MS=2000 WEBHOOK_LEASE_MS=3000 SHUTDOWN_BACKGROUND_TIMEOUT=5 \
      INGEST_ENABLED=false SYNC_ENABLED=false HORIZON_URL="http://127.0.0.1:9" \
      HORIZON_RATE_LIMIT=0 INGEST_START_LEDGER=1000 INGEST_POLL_INTERVAL_MS=50 \
      INGEST_BACKOFF_MIN_MS=20 INGEST_BACKOFF_MAX_MS=200 \
      SHUTDOWN_REPORT_PATH="$run_dir/report.json" "$@" "$BIN" 2>>"$run_dir/log") &
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

sql() { si_sql "$@"; }  # sql DB QUERY (scripts/lib/verify.sh)

# api METHOD PATH [BODY] [AUTH=yes|no]: sets http_status and resp.
api() {
  local method="$1" path="$2" data="${3:-}" auth="${4:-yes}"
  local args=(-s -o "$work/resp" -w '%{http_code}' --max-time 15 -X "$method")
  [ "$auth" = yes ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  http_status=$(curl "${args[@]}" "$base$path")
  resp=$(cat "$work/resp")
}

# refused LABEL BODY STATUS FIELD TEXT: a registration refused naming FIELD, message has TEXT.
refused() {
  api POST /api/v1/webhooks "$2"
  local field message
  field=$(jq -r '.error.field // "-"' <<<"$resp" 2>/dev/null)
  message=$(jq -r '.error.message // "-"' <<<"$resp" 2>/dev/null)
  check "$1 → $3 naming $4 ($http_status $field: $message)" \
    [ "$http_status/$field" = "$3/$4" -a -n "$(grep -F -- "$5" <<<"$message")" ]
}

# create_hook NAME TYPES_JSON FILTERS_JSON MODE [RECEIVER_EXTRA]: registers a webhook to the
# receiver's endpoint NAME and configures the endpoint; sets hook_id and hook_secret.
create_hook() {
  local name="$1" types="$2" filters="$3" mode="$4" extra="${5:-}"
  api POST /api/v1/webhooks \
    "{\"url\":\"$RECEIVER_URL/hook/$name\",\"event_types\":$types,\"filters\":$filters}"
  hook_id=$(jq -r '.id // empty' <<<"$resp")
  hook_secret=$(jq -r '.secret // empty' <<<"$resp")
  [ "$http_status" = 201 ] && [ -n "$hook_id" ] && [ -n "$hook_secret" ] \
    && si_receiver_config "$name" "$hook_secret" "$mode" "$extra"
}

stat_of() { si_receiver_get "_stats?name=$1" | jq -r ".$2"; }
delivery_of() {  # delivery_of HOOK_ID EVENT_ID JQ_FILTER (e.g. .attempts)
  api GET "/api/v1/webhooks/$1/deliveries?limit=200"
  jq -r --arg e "$2" ".deliveries[] | select(.event_id == \$e) | $3" <<<"$resp"
}
delivery_is() { [ "$(delivery_of "$1" "$2" .status)" = "$3" ]; }
received() { [ "$(si_receiver_get "_ids?name=$1" | jq -r --arg e "$2" '.[$e] // 0')" -ge "${3:-1}" ]; }
metric() {  # metric 'name{labels}' → value (0 when absent)
  local v
  v=$(curl -sf --max-time 5 "$base/metrics" | grep -F "$1 " | grep -v '^#' | awk '{print $2}' \
    | head -1)
  echo "${v:-0}"
}
all_in() { [ -s "$1" ] && [ -z "$(comm -23 "$1" "$2")" ]; }  # all_in A B: A ⊆ B, A not empty
queue_empty() {  # queue_empty DB 'ID','ID',...: every delivery of these webhooks delivered
  [ "$(sql "$1" "SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'delivered'
                 AND webhook_id IN ($2)")" = 0 ]
}

# --- A. refusals (WEBHOOK_ALLOW_PRIVATE=false)
section_a() {
  local label="$1" url="$2"
  start_server "$label-a" "$url" WEBHOOK_ALLOW_PRIVATE=false || return 1
  local t='"event_types":["test"]'
  refused "$label: a name resolving to 127.0.0.1 (localhost)" \
    "{\"url\":\"http://localhost:$rport/hook/x\",$t}" 422 url "loopback"
  refused "$label: a loopback literal" "{\"url\":\"http://127.0.0.1:$rport/hook/x\",$t}" \
    422 url "loopback"
  refused "$label: IPv6 loopback" "{\"url\":\"http://[::1]/x\",$t}" 422 url "loopback"
  refused "$label: a private address" "{\"url\":\"https://10.1.2.3/x\",$t}" 422 url "private"
  refused "$label: cloud metadata" "{\"url\":\"http://169.254.169.254/latest/meta-data\",$t}" \
    422 url "metadata"
  refused "$label: a numeric host" "{\"url\":\"http://2130706433/\",$t}" 422 url "dotted-quad"
  refused "$label: ftp" "{\"url\":\"ftp://hooks.example/x\",$t}" 422 url "only http and https"
  refused "$label: userinfo" "{\"url\":\"https://u:p@hooks.example/x\",$t}" 422 url "userinfo"
  refused "$label: no url" "{$t}" 422 url "required"
  refused "$label: unknown event type" \
    '{"url":"https://hooks.example/x","event_types":["payment.sent"]}' 422 event_types \
    "not a known event type"
  refused "$label: empty event types" '{"url":"https://hooks.example/x","event_types":[]}' \
    422 event_types "at least one"
  refused "$label: no event types" '{"url":"https://hooks.example/x"}' 422 event_types "required"
  refused "$label: filters not an object" \
    "{\"url\":\"https://hooks.example/x\",$t,\"filters\":\"x\"}" 422 filters "JSON object"
  api POST /api/v1/webhooks '{"url":'
  check "$label: invalid JSON → 400 INVALID_JSON" \
    [ "$http_status/$(jq -r .error.code <<<"$resp")" = "400/INVALID_JSON" ]
  api POST /api/v1/webhooks "{\"url\":\"http://127.0.0.1:$rport/hook/x\",$t}" no
  check "$label: no token → 401" [ "$http_status" = 401 ]
  api GET /api/v1/webhooks "" no
  check "$label: listing needs the token too → 401" [ "$http_status" = 401 ]
  api GET /api/v1/webhooks/nope
  check "$label: malformed id → 400 INVALID_WEBHOOK_ID" \
    [ "$http_status/$(jq -r .error.code <<<"$resp")" = "400/INVALID_WEBHOOK_ID" ]
  api GET /api/v1/webhooks/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV
  check "$label: unknown id → 404" [ "$http_status" = 404 ]
  api POST /api/v1/webhooks/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV/test
  check "$label: test event for an unknown id → 404" [ "$http_status" = 404 ]
  api GET /api/v1/webhooks
  check "$label: nothing was registered" [ "$http_status/$(jq .total <<<"$resp")" = "200/0" ]
  stop_server TERM
  check "$label: A exits 0 ($exit_code)" [ "$exit_code" = 0 ]
}

# --- B. the API, signatures, retries, dead letters, 410, metrics, secrets, drain
section_b() {
  local label="$1" url="$2" db="$3"
  start_server "$label-b" "$url" || return 1
  local secrets=()

  create_hook "${label}_ok" '["test","anchor.status_changed"]' '{"anchor_id":7}' ok
  check "$label: POST /webhooks → 201 ($http_status)" [ "$http_status" = 201 ]
  local ok_id="$hook_id"
  secrets+=("$hook_secret")
  check "$label: the answer shows the secret once (whsec_)" [ "${hook_secret#whsec_}" != "$hook_secret" ]
  check "$label: the answer has the registration" \
    [ "$(jq -c '[.url, .event_types, .filters, .enabled, (.created_at > 0)]' <<<"$resp")" \
      = "[\"$RECEIVER_URL/hook/${label}_ok\",[\"test\",\"anchor.status_changed\"],{\"anchor_id\":7},true,true]" ]
  check "$label: the secret is sealed in the database (enc:v1:)" \
    [ "$(sql "$db" "SELECT substr(secret, 1, 7) FROM webhooks WHERE id = '$ok_id'")" = "enc:v1:" ]
  api GET /api/v1/webhooks
  check "$label: list → 1, no secret" \
    [ "$http_status/$(jq .total <<<"$resp")/$(grep -c whsec_ <<<"$resp")" = "200/1/0" ]
  api GET "/api/v1/webhooks/$ok_id"
  check "$label: get → 200 without the secret" \
    [ "$http_status/$(jq -r .id <<<"$resp")/$(jq 'has("secret")' <<<"$resp")" = "200/$ok_id/false" ]

  # A test event: signed, verified by the receiver, recorded delivered.
  api POST "/api/v1/webhooks/$ok_id/test"
  local ev
  ev=$(jq -r .event_id <<<"$resp")
  check "$label: POST /test → 202 with the event id" [ "$http_status" = 202 -a "${ev#msg_}" != "$ev" ]
  si_wait_for "test event delivered" 20 delivery_is "$ok_id" "$ev" delivered
  check "$label: the receiver verified it, webhook-id = event id" received "${label}_ok" "$ev"
  check "$label: no signature failed at the receiver" [ "$(stat_of "${label}_ok" invalid)" = 0 ]
  check "$label: its body is {type, timestamp, data}" \
    [ "$(si_receiver_get "_requests?name=${label}_ok" | jq -r '.[0] | [.type, .data.webhook_id] | join(",")')" \
      = "test,$ok_id" ]
  check "$label: deliveries show one attempt, 204" \
    [ "$(delivery_of "$ok_id" "$ev" .attempts)/$(delivery_of "$ok_id" "$ev" '.attempt_log[0].status_code')" \
      = "1/204" ]

  # Retries: 500, 500, then 204 — one webhook-id, on the backoff schedule (200..400 ms).
  create_hook "${label}_flaky" '["test"]' '{}' flaky '"fail_first":2'
  local flaky_id="$hook_id"
  secrets+=("$hook_secret")
  api POST "/api/v1/webhooks/$flaky_id/test"
  ev=$(jq -r .event_id <<<"$resp")
  si_wait_for "flaky delivery" 30 delivery_is "$flaky_id" "$ev" delivered
  check "$label: flaky: delivered after 3 attempts" [ "$(delivery_of "$flaky_id" "$ev" .attempts)" = 3 ]
  check "$label: flaky: the attempts answered 500, 500, 204" \
    [ "$(delivery_of "$flaky_id" "$ev" '[.attempt_log[].status_code] | map(tostring) | join(",")')" \
      = "500,500,204" ]
  check "$label: flaky: the receiver saw one webhook-id 3 times" received "${label}_flaky" "$ev" 3
  local gaps
  gaps=$(delivery_of "$flaky_id" "$ev" \
    '[.attempt_log[].attempted_at] | [.[1] - .[0], .[2] - .[1]] | map(tostring) | join(" ")')
  local g in_window=yes
  [ "$(wc -w <<<"$gaps")" = 2 ] || in_window=no
  for g in $gaps; do
    if [ "$g" -lt 200 ] || [ "$g" -gt 1500 ]; then in_window=no; fi
  done
  check "$label: flaky: retries waited the backoff (gaps $gaps ms, 200..400 + poll)" [ "$in_window" = yes ]
  check "$label: flaky: each attempt is signed with its own fresh timestamp" \
    [ "$(si_receiver_get "_requests?name=${label}_flaky" \
         | jq '[.[] | (.at_ms - .ts * 1000) | (. > -1000 and . < 5000)] | all')" = true ]

  # Dead letter: always 500 → failed after WEBHOOK_MAX_ATTEMPTS (3).
  create_hook "${label}_fail" '["test"]' '{}' fail
  local fail_id="$hook_id"
  secrets+=("$hook_secret")
  api POST "/api/v1/webhooks/$fail_id/test"
  ev=$(jq -r .event_id <<<"$resp")
  si_wait_for "dead letter" 30 delivery_is "$fail_id" "$ev" failed
  check "$label: dead letter after 3 attempts, last 500" \
    [ "$(delivery_of "$fail_id" "$ev" .attempts)/$(delivery_of "$fail_id" "$ev" .last_status_code)" = "3/500" ]
  check "$label: the receiver saw exactly 3 attempts" \
    [ "$(si_receiver_get "_ids?name=${label}_fail" | jq -r --arg e "$ev" '.[$e]')" = 3 ]

  # 410 Gone disables the webhook; later events are held, not sent.
  create_hook "${label}_gone" '["test"]' '{}' gone
  local gone_id="$hook_id"
  secrets+=("$hook_secret")
  api POST "/api/v1/webhooks/$gone_id/test"
  ev=$(jq -r .event_id <<<"$resp")
  si_wait_for "410" 20 delivery_is "$gone_id" "$ev" failed
  api GET "/api/v1/webhooks/$gone_id"
  check "$label: 410 disabled the webhook" \
    [ "$(jq -r '[.enabled, .disabled_reason] | map(tostring) | join("/")' <<<"$resp")" \
      = "false/endpoint answered 410 Gone" ]
  api POST "/api/v1/webhooks/$gone_id/test"
  local held="$(jq -r .event_id <<<"$resp")"
  # The ok hook's next event passes through the same dispatcher after the held one was written.
  api POST "/api/v1/webhooks/$ok_id/test"
  local later="$(jq -r .event_id <<<"$resp")"
  si_wait_for "later event" 20 delivery_is "$ok_id" "$later" delivered
  check "$label: a disabled webhook's event is held (pending, 0 attempts)" \
    [ "$(delivery_of "$gone_id" "$held" .status)/$(delivery_of "$gone_id" "$held" .attempts)" = "pending/0" ]
  check "$label: the gone endpoint was called once" [ "$(stat_of "${label}_gone" requests)" = 1 ]

  # Metrics.
  check "$label: metrics: delivered counted" \
    [ "$(metric 'si_webhook_deliveries_total{outcome="delivered"}' | cut -d. -f1)" -ge 3 ]
  check "$label: metrics: retries counted" \
    [ "$(metric 'si_webhook_deliveries_total{outcome="retry"}' | cut -d. -f1)" -ge 4 ]
  check "$label: metrics: dead letter and 410 counted" \
    [ "$(metric 'si_webhook_deliveries_total{outcome="failed"}')/$(metric 'si_webhook_deliveries_total{outcome="disabled"}')" = "1/1" ]
  check "$label: metrics: attempt durations observed" \
    [ "$(metric 'si_webhook_attempt_duration_seconds_count' | cut -d. -f1)" -ge 9 ]
  si_wait_for "queue gauge" 15 bash -c "curl -sf '$base/metrics' | grep -q '^si_webhook_queue_depth '"
  check "$label: metrics: queue depth and oldest pending age exported" \
    bash -c "curl -sf '$base/metrics' | grep -q '^si_webhook_oldest_pending_age_seconds '"
  if command -v promtool >/dev/null; then
    check "$label: promtool check metrics passes" \
      bash -c "curl -sf '$base/metrics' | promtool check metrics >/dev/null 2>&1"
  fi

  # Delete.
  api DELETE "/api/v1/webhooks/$fail_id"
  check "$label: DELETE → 204" [ "$http_status" = 204 ]
  api GET "/api/v1/webhooks/$fail_id"
  check "$label: deleted → 404" [ "$http_status" = 404 ]
  api GET "/api/v1/webhooks/$fail_id/deliveries"
  check "$label: its deliveries → 404" [ "$http_status" = 404 ]
  api DELETE "/api/v1/webhooks/$fail_id"
  check "$label: DELETE again → 404" [ "$http_status" = 404 ]
  api GET "/api/v1/webhooks?limit=2&offset=1"
  check "$label: list pages (3 left, 2 shown)" \
    [ "$(jq '[.total, (.webhooks | length)] | map(tostring) | join("/")' -r <<<"$resp")" = "3/2" ]

  # SIGTERM while a slow delivery is in flight: the drain lets it finish.
  create_hook "${label}_slow" '["test"]' '{}' ok '"delay_ms":1500'
  local slow_id="$hook_id"
  secrets+=("$hook_secret")
  api POST "/api/v1/webhooks/$slow_id/test"
  ev=$(jq -r .event_id <<<"$resp")
  si_wait_for "slow delivery in flight" 20 \
    bash -c "[ \"\$(curl -sf '$RECEIVER_URL/_stats?name=${label}_slow' | jq .in_progress)\" = 1 ]"
  stop_server TERM
  check "$label: SIGTERM with a delivery in flight exits 0 ($exit_code)" [ "$exit_code" = 0 ]
  check "$label: the report lists webhook_dispatcher ok, nothing handed back" \
    [ "$(jq -r '.actors[] | select(.actor == "webhook_dispatcher")
                | "\(.outcome)/\(.counts.pending_left)/\(.counts.cut)"' "$run_dir/report.json")" \
      = "ok/0/0" ]
  check "$label: the slow delivery is recorded delivered" \
    [ "$(sql "$db" "SELECT status FROM webhook_deliveries WHERE event_id = '$ev'")" = delivered ]

  # Secrets never reach the log.
  local s leaked=0
  for s in "${secrets[@]}" "$key"; do
    if grep -qF -- "${s#whsec_}" "$work/$label-a/log" "$run_dir/log"; then leaked=$((leaked + 1)); fi
  done
  check "$label: no secret and no WEBHOOK_SECRET_KEY in the logs ($leaked found)" [ "$leaked" = 0 ]
}

# --- C. kill -9 while payments and test events flow
start_poster() {  # start_poster HOOK_ID FILE: POSTs test events in a loop; 202'd ids → FILE
  (
    while :; do
      curl -s --max-time 2 -X POST -H "Authorization: Bearer $token" \
        "$base/api/v1/webhooks/$1/test" | jq -r '.event_id // empty' >>"$2" 2>/dev/null
    done
  ) &
  poster_pid=$!
}
stop_poster() {
  kill -KILL "$poster_pid" 2>/dev/null
  wait "$poster_pid" 2>/dev/null
  poster_pid=""
}

section_c() {
  local label="$1" url="$2" db="$3"
  si_start_sim "$SIM" "$work/sim-$label" --seed 21 --start-ledger 1000 --ledgers 10 \
    --close-ms 40 --max-ledgers 250 --tx-per-ledger 6 || return 1
  # Subscribed before anything is ingested: every payment must yield an event.
  start_server "$label-c0" "$url" || return 1
  create_hook "${label}_pay" '["payment.created"]' '{}' ok '"delay_ms":25'
  local pay_id="$hook_id"
  create_hook "${label}_path" '["payment.created"]' '{"type":"path_payment_strict_send"}' ok
  local path_id="$hook_id"
  create_hook "${label}_tests" '["test"]' '{}' ok '"delay_ms":10'
  local tests_id="$hook_id"
  stop_server TERM
  local accepted="$work/accepted-$label" i kills=4
  : >"$accepted"
  for i in $(seq 1 $kills); do
    start_server "$label-c$i" "$url" INGEST_ENABLED=true HORIZON_URL="$SIM_URL" \
      INGEST_BATCH_LEDGERS=$(( (RANDOM % 4) + 1 )) || return 1
    start_poster "$tests_id" "$accepted"
    # The kill instant is the chaos being tested, not a synchronisation: random in 0.5..1.4 s.
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.5 + (r % 90) / 100 }')"
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null
    server_pid=""
    stop_poster
  done
  echo "# $label: after $kills kills, $(sql "$db" "SELECT COUNT(*) FROM webhook_deliveries \
    WHERE status = 'pending'") deliveries pending ($(sql "$db" "SELECT COUNT(*) FROM \
    webhook_deliveries WHERE status = 'pending' AND claimed_until IS NOT NULL") still claimed)"
  start_server "$label-c-final" "$url" INGEST_ENABLED=true HORIZON_URL="$SIM_URL" || return 1
  at_tip() {
    [ "$(curl -sf --max-time 5 "$base/api/v1/ingestion/status" | jq -r .last_ledger)" = 1249 ]
  }
  si_wait_for "ingestion to ledger 1249" 120 at_tip \
    || fail_now "$label: ingestion reached ledger 1249 after $kills kills"
  local hooks="'$pay_id','$path_id','$tests_id'"
  si_wait_for "every delivery delivered" 120 queue_empty "$db" "$hooks" \
    || fail_now "$label: deliveries left: $(sql "$db" "SELECT status || ' ' || COUNT(*) FROM webhook_deliveries GROUP BY status" | tr '\n' ' ')"

  # Every ingested payment has exactly one event (written in the page's own transaction).
  local figures="$work/figures-$label" pe
  pe=$(si_payment_event_figures "$db" "$figures")
  check "$label: $(jq .payments <<<"$pe") payments ingested, one event each ($pe)" \
    [ "$(jq '.payments > 0 and .without_event + .duplicates + .unknown == 0' <<<"$pe")" = true ]

  # Every outbox event reached the receiver under its event id (duplicates allowed).
  local name hook wf
  for name in pay tests; do
    hook=$([ "$name" = pay ] && echo "$pay_id" || echo "$tests_id")
    wf=$(si_webhook_delivery_figures "$db" "$hook" "${label}_$name" "$figures")
    check "$label: $name: all $(jq .events <<<"$wf") events received, 0 lost ($wf)" \
      [ "$(jq '.events > 0 and .lost == 0' <<<"$wf")" = true ]
    check "$label: $name: the receiver got no event the outbox does not have" \
      [ "$(jq .unknown <<<"$wf")" = 0 ]
    check "$label: $name: every signature verified" [ "$(jq .invalid <<<"$wf")" = 0 ]
    echo "# $label $name: $(jq .requests <<<"$wf") requests for $(jq .received <<<"$wf")" \
      "events (duplicates after kill -9 allowed)"
  done
  sort -u "$accepted" >"$work/accepted-sorted-$label"
  check "$label: $(wc -l <"$work/accepted-sorted-$label") test events answered 202 were all received" \
    all_in "$work/accepted-sorted-$label" "$figures/received-${label}_tests"

  # Filters: the path endpoint got exactly the path_payment_strict_send events.
  local want got
  want=$(sql "$db" "SELECT payload FROM webhook_outbox WHERE type = 'payment.created'" \
    | jq -r 'select(.data.type == "path_payment_strict_send") | .data.id' | sort -u | wc -l)
  got=$(si_receiver_get "_requests?name=${label}_path" \
    | jq -r '[.[] | select(.data.type == "path_payment_strict_send") | .data.id] | unique | length')
  check "$label: filtered endpoint: $got of $want path payments, nothing else" \
    [ "$want" -gt 0 -a "$got" = "$want" -a \
      "$(si_receiver_get "_requests?name=${label}_path" | jq '[.[] | select(.data.type != "path_payment_strict_send")] | length')" = 0 ]
  stop_server TERM
  check "$label: C final run exits 0 ($exit_code)" [ "$exit_code" = 0 ]
  si_stop_sim
}

run_scenarios() {  # run_scenarios LABEL DATABASE_URL DB_FOR_SQL
  section_a "$1" "$2"
  section_b "$1" "$2" "$3"
  section_c "$1" "$2" "$3"
}

# An unusable WEBHOOK_SECRET_KEY (the right length, not base64) stops start-up, named.
bad_key=$(printf '!%.0s' $(seq 1 43))
out=$(env -i PATH="$PATH" WEBHOOK_SECRET_KEY="$bad_key" DATABASE_URL="sqlite://$work/unused.db" \
  "$BIN" --check-config 2>&1)
code=$?
check "an unusable WEBHOOK_SECRET_KEY exits 2 ($code)" [ "$code" = 2 ]
check "the message names WEBHOOK_SECRET_KEY and not the value" \
  [ -n "$(grep -F WEBHOOK_SECRET_KEY <<<"$out")" -a -z "$(grep -F -- "$bad_key" <<<"$out")" ]

run_scenarios sqlite "sqlite://$work/si.db" "$work/si.db"
if [ -z "${SI_TEST_POSTGRES_URL:-}" ]; then
  fail_now "SI_TEST_POSTGRES_URL is set (run via scripts/test)"
else
  pg_db="si_webhooks_$$"
  psql "$SI_TEST_POSTGRES_URL" -qAt -c "CREATE DATABASE $pg_db" >/dev/null
  pg_url="${SI_TEST_POSTGRES_URL%/*}/$pg_db"
  run_scenarios postgres "$pg_url" "$pg_url"
fi
finish webhooks

#!/usr/bin/env bash
# Process-level test of the REST API (docs: /work/shared/api.md) against the real binary on
# SQLite: every route the gateway serves — success shapes, filters/sort/paging really
# applied, error paths and their codes — plus caching (ETag, 304), request ids, auth,
# writes invalidating cached lists, /metrics (promtool), and hostile input (malformed
# request line, oversized header/body, bad escapes) after which the server still answers.
# Data: the server migrates an empty database on a first run, is stopped, the database is
# seeded from fixtures/api_seed.sql (timestamps relative to now), and it is started again.
# Usage: http_api.sh BINARY
set -uo pipefail
if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 BINARY (an executable stellar-insights)" >&2
  exit 2
fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # absolute: the server runs in a temp dir
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../scripts/lib/common.sh"
source "$(dirname "$0")/lib.sh"
seed="$here/fixtures/api_seed.sql"

work=$(mktemp -d /tmp/si-api.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -KILL "$server_pid" 2>/dev/null
  fi
  if [ -n "${KEEP_WORK:-}" ]; then  # KEEP_WORK=1: leave the logs and database for a look
    echo "# kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT


# --- the server --------------------------------------------------------------------------

db="$work/si.db"
start_server() {  # start_server NAME [VAR=value...]
  local name="$1"
  shift
  run_dir="$work/$name"
  mkdir -p "$run_dir"
  port=$(si_free_port)
  # HORIZON_URL points at a closed loopback port: the test never leaves the machine; no
  # ingestion or sync runs, so the seeded figures stay as seeded.
  (cd "$run_dir" && exec env -i PATH="$PATH" HOME="$run_dir" LOG_FORMAT=json PORT="$port" \
      HOST=127.0.0.1 ADMIN_API_TOKEN=secret HORIZON_URL=http://127.0.0.1:9 \
      INGEST_ENABLED=false SYNC_ENABLED=false \
      DATABASE_URL="sqlite://$db" SHUTDOWN_REPORT_PATH="$run_dir/report.json" \
      "$@" "$BIN" 2>"$run_dir/log") &
  server_pid=$!
  base="http://127.0.0.1:$port"
  si_wait_for "$name listening" 15 curl -sf --max-time 2 "$base/health" \
    || { tail -20 "$run_dir/log" >&2; return 1; }
}

gone() {  # gone PID: the process has exited (a zombie counts: `wait` reaps it at once)
  local s
  s=$(ps -o stat= -p "$1" 2>/dev/null)
  [ -z "$s" ] || [[ "$s" == Z* ]]
}

stop_server() {  # stop_server: SIGTERM, bounded wait; sets stop_code (124 on a hang)
  kill -TERM "$server_pid" 2>/dev/null
  if si_wait_for "server exit" 15 gone "$server_pid"; then
    wait "$server_pid"
    stop_code=$?
  else
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    stop_code=124
  fi
  server_pid=""
}

# --- requests ----------------------------------------------------------------------------

# req METHOD PATH [curl args...]: sets $status; the body is in $work/body, headers in $work/hdr.
req() {
  local method="$1" path="$2"
  shift 2
  rm -f "$work/body" "$work/hdr"  # curl writes no file for an empty body
  status=$(curl -s --max-time 10 -X "$method" -o "$work/body" -D "$work/hdr" \
    -w '%{http_code}' "$@" "$base$path")
  touch "$work/body" "$work/hdr"
}
get() { req GET "$@"; }
post_json() {  # post_json PATH BODY [curl args...]  (with the admin token)
  local path="$1" body="$2"
  shift 2
  req POST "$path" -H 'Authorization: Bearer secret' -H 'Content-Type: application/json' \
    --data-binary "$body" "$@"
}
header() {  # header NAME: the value of a response header (first one), without CR
  grep -i "^$1:" "$work/hdr" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}
jqb() {  # jqb FILTER [jq args...]: the body satisfies FILTER
  local f="$1"
  shift
  jq -e "$@" "$f" "$work/body" >/dev/null 2>&1 || { echo "#   body: $(head -c 400 "$work/body")"; return 1; }
}
is_status() {  # is_status WANT
  [ "$status" = "$1" ] || { echo "#   status $status, body: $(head -c 300 "$work/body")"; return 1; }
}
# the items of the last body, via FILTER, comma-joined, equal WANT
order_is() {
  local got
  got=$(jq -r "$1" "$work/body" 2>/dev/null | paste -sd, -)
  [ "$got" = "$2" ] || { echo "#   got:  $got"; echo "#   want: $2"; return 1; }
}
# an error body: {"error":{"code":CODE,"message":...,"request_id":...}} with STATUS
is_error() {  # is_error STATUS CODE [FIELD]
  is_status "$1" || return 1
  jqb '(.error.code == $c) and (.error.message | type == "string")
       and (.error.request_id | type == "string" and length > 0)' --arg c "$2" || return 1
  if [ -n "${3:-}" ]; then
    # "naming the field": the message names it (and an explicit `field`, when sent, is it)
    jqb '(.error.message | contains($f)) and ((.error | has("field") | not) or .error.field == $f)' \
      --arg f "$3" || return 1
  fi
}
alive() {  # the server still answers /health 200
  [ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$base/health")" = 200 ]
}
enc() { jq -rn --arg s "$1" '$s | @uri'; }

# --- fixture ids (fixtures/api_seed.sql) -------------------------------------------------

I1=GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7
I2=GALPCCZN4YXA3YMJHKL6CVIECKPLJJCTVMSNYWBTKJW4K5HQLYLDMZTB
I3=GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN
C1="USDC:$I1->XLM:native"
C2="XLM:native->EURT:$I2"
C3="BTC:$I3->USDC:$I1"
C4="EURT:$I2->BTC:$I3"
A1_ACCOUNT=GDYG6NVTFCY6HPBRQ3SQNKTDZUR7SS6WAWNEAKAFJW5EMKDGQLPG523C
NEW_ACCOUNT=GD4WZJMMTBYHEGIDW7RIRSCPXOWRZ5ACD6CWLFWJZCGFMTKKEU3KYBGW  # not seeded
UNKNOWN_ACCOUNT=GC5LF63GRVIT5ZXXCXLPI3RX2YXKJQFZVBSAO6AUELN3YIMSWPD6Z6FH  # never used
# One character changed (the checksum no longer matches): a malformed StrKey.
BAD_ACCOUNT="${A1_ACCOUNT:0:20}$([ "${A1_ACCOUNT:20:1}" = A ] && echo B || echo A)${A1_ACCOUNT:21}"
BAD_ISSUER="${I1:0:30}$([ "${I1:30:1}" = A ] && echo B || echo A)${I1:31}"
P1=0000a8198b5e25994c1ca5b0556faeb27325ac746296944144e0a7406d501e8a
P2=00027e57b10c37b92854c439e2406c110a9b0a545c463aa1aefe4efe524090e0
P3=00038572bdc9b568ba564babaf39685ca18316e0d170080a1181e952b393162f
P4=a468d41d8e9b8f3c7209651608b74b7db7ac9952dcae0cdf24871d1d9c7b0088
P_UNKNOWN=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff

for tool in curl jq sqlite3; do
  command -v "$tool" >/dev/null || { echo "http_api: $tool is required" >&2; exit 2; }
done

# === 1: schema by a first run, seed, second run ===========================================
start_server first || { fail_now "first run did not start"; echo "http_api: $passed passed, $failed failed"; exit 1; }
stop_server
check "first run exits 0 on SIGTERM (got $stop_code)" [ "$stop_code" -eq 0 ]
first_report="$work/first/report.json"
check "seed loads into the migrated schema" sqlite3 "$db" ".read $seed"
start_server second || { fail_now "second run did not start"; echo "http_api: $passed passed, $failed failed"; exit 1; }

# === 2a: health, readiness, ingestion, cache stats ========================================
get /health
check "/health 200 {status:ok, version, uptime_seconds}" \
  eval 'is_status 200 && jqb ".status == \"ok\" and (.version | type == \"string\") and (.uptime_seconds | type == \"number\")"'
check "/health is application/json" eval '[[ "$(header Content-Type)" == application/json* ]]'
get /health/ready
check "/health/ready 200 {status:ready, checks:{db, cache, ingestor}}" \
  eval 'is_status 200 && jqb ".status == \"ready\" and (.checks | has(\"db\") and has(\"cache\") and has(\"ingestor\"))"'
get /api/v1/ingestion/status
check "ingestion/status 200 {last_ledger, cursor, ledgers_behind, last_error, state}" \
  eval 'is_status 200 && jqb "has(\"last_ledger\") and has(\"cursor\") and has(\"ledgers_behind\") and has(\"last_error\") and has(\"state\")"'
get /api/v1/cache/stats
check "cache/stats 200 {backend:memory, hits, misses, invalidations, hit_rate_percent}" \
  eval 'is_status 200 && jqb ".backend == \"memory\" and ([.hits, .misses, .invalidations, .hit_rate_percent] | all(type == \"number\"))"'

# === 2b: corridors ========================================================================
V='.corridors[].id'
get /api/v1/corridors
check "corridors 200, total 4" eval 'is_status 200 && jqb ".total == 4 and (.corridors | length == 4)"'
check "corridor items carry every field" jqb '.corridors | all(has("id") and has("source_asset")
  and has("destination_asset") and has("success_rate") and has("total_attempts")
  and has("successful") and has("failed") and has("volume") and has("last_updated"))'
check "corridor ids and assets are CODE:ISSUER (native XLM:native)" \
  jqb '.corridors[] | select(.id == $id) | .source_asset == $s and .destination_asset == "XLM:native"' \
  --arg id "$C1" --arg s "USDC:$I1"
check "corridor success_rate is a percent from the counts (95)" \
  jqb '.corridors[] | select(.id == $id) | .success_rate == 95 and .total_attempts == 100 and .successful == 95 and .failed == 5' --arg id "$C1"
check "a corridor without attempts has success_rate null" \
  jqb '.corridors[] | select(.id == $id) | .success_rate == null' --arg id "$C4"
check "default sort: volume desc" order_is "$V" "$C2,$C1,$C3,$C4"
get "/api/v1/corridors?sort_by=volume&order=asc"
check "sort_by=volume order=asc" order_is "$V" "$C4,$C3,$C1,$C2"
get "/api/v1/corridors?sort_by=success_rate&order=desc"
check "sort_by=success_rate desc (null last)" order_is "$V" "$C1,$C3,$C2,$C4"
get "/api/v1/corridors?sort_by=success_rate&order=asc"
check "sort_by=success_rate asc (null last)" order_is "$V" "$C2,$C3,$C1,$C4"
get "/api/v1/corridors?sort_by=attempts&order=desc"
check "sort_by=attempts desc" order_is "$V" "$C3,$C1,$C2,$C4"
get "/api/v1/corridors?sort_by=attempts&order=asc"
check "sort_by=attempts asc" order_is "$V" "$C4,$C2,$C1,$C3"
get "/api/v1/corridors?asset_code=USDC"
check "asset_code=USDC matches source or destination (total 2)" \
  eval 'order_is "$V" "$C1,$C3" && jqb ".total == 2"'
get "/api/v1/corridors?asset_code=XLM"
check "asset_code=XLM (native on either side)" order_is "$V" "$C2,$C1"
get "/api/v1/corridors?asset_code=NOPE"
check "asset_code without corridors: empty, total 0" jqb '.corridors == [] and .total == 0'
get "/api/v1/corridors?success_rate_min=90"
check "success_rate_min=90 inclusive (null excluded)" \
  eval 'order_is "$V" "$C1,$C3" && jqb ".total == 2"'
get "/api/v1/corridors?success_rate_max=60"
check "success_rate_max=60" eval 'order_is "$V" "$C2" && jqb ".total == 1"'
get "/api/v1/corridors?success_rate_min=50&success_rate_max=92"
check "success_rate_min and max together" order_is "$V" "$C2,$C3"
get "/api/v1/corridors?volume_min=1000&volume_max=5000"
check "volume_min=1000&volume_max=5000 inclusive" \
  eval 'order_is "$V" "$C1,$C3" && jqb ".total == 2"'
get "/api/v1/corridors?volume_min=5000"
check "volume_min=5000" order_is "$V" "$C2,$C1"
get "/api/v1/corridors?volume_max=0"
check "volume_max=0" order_is "$V" "$C4"
get "/api/v1/corridors?period=24h"
check "period=24h: only C1, figures from its last-day bucket" \
  eval 'order_is "$V" "$C1" && jqb ".total == 1 and .corridors[0].total_attempts == 10 and .corridors[0].successful == 9 and .corridors[0].success_rate == 90 and .corridors[0].volume == 100"'
get "/api/v1/corridors?period=7d"
check "period=7d: C1 and C2 with windowed sums" \
  eval 'order_is "$V" "$C1,$C2" && jqb ".total == 2 and .corridors[0].total_attempts == 30 and .corridors[0].volume == 300 and .corridors[1].success_rate == 25"'
get "/api/v1/corridors?period=30d"
check "period=30d: C1, C3, C2 (the 45-day bucket excluded)" \
  eval 'order_is "$V" "$C1,$C3,$C2" && jqb ".total == 3 and .corridors[0].total_attempts == 60 and .corridors[1].total_attempts == 8"'
get "/api/v1/corridors?period=7d&success_rate_max=30"
check "filters apply to the windowed figures (7d, rate <= 30: C2)" order_is "$V" "$C2"
get "/api/v1/corridors?period=30d&asset_code=EURT"
check "period=30d&asset_code=EURT: C2 (C4 has no buckets)" order_is "$V" "$C2"
get "/api/v1/corridors?limit=2"
check "limit=2: first two, total 4" eval 'order_is "$V" "$C2,$C1" && jqb ".total == 4"'
get "/api/v1/corridors?limit=2&offset=2"
check "limit=2&offset=2: next two, total 4" eval 'order_is "$V" "$C3,$C4" && jqb ".total == 4"'
get "/api/v1/corridors?offset=10"
check "offset past the end: empty page, total 4" jqb '.corridors == [] and .total == 4'
get "/api/v1/corridors?sort_by=attempts&order=asc&limit=1&offset=1&success_rate_min=0"
check "filter+sort+page together" eval 'order_is "$V" "$C1" && jqb ".total == 3"'

get "/api/v1/corridors/$(enc "$C1")"
check "corridor by id 200 {corridor, history}" \
  eval 'is_status 200 && jqb ".corridor.id == \$id and .corridor.total_attempts == 100 and (.history | length == 3)" --arg id "$C1"'
check "history items {bucket_start, attempts, success_rate, volume}, oldest first" \
  jqb '(.history | all(has("bucket_start") and has("attempts") and has("success_rate") and has("volume")))
       and ([.history[].bucket_start] == ([.history[].bucket_start] | sort))
       and ([.history[].attempts] == [30, 20, 10])'
check "corridor detail carries the list fields" jqb '.corridor | has("source_asset")
  and has("destination_asset") and has("success_rate") and has("successful") and has("failed")
  and has("volume") and has("last_updated")'
get "/api/v1/corridors/$(enc "$C1")?period=24h"
check "corridor by id with period=24h: one bucket, windowed figures" \
  jqb '(.history | length == 1) and .corridor.total_attempts == 10 and .corridor.success_rate == 90'
get "/api/v1/corridors/$(enc "$C4")?period=7d"
check "corridor without buckets in the window: 200, 0 attempts, null rate" \
  eval 'is_status 200 && jqb ".corridor.total_attempts == 0 and .corridor.success_rate == null and .history == []"'
get "/api/v1/corridors/$(enc "XLM:native->USDC:$I2")"
check "unknown (valid) corridor id → 404 NOT_FOUND" is_error 404 NOT_FOUND
get "/api/v1/corridors/$(enc "USDC:$I1-XLM:native")"
check "corridor id without '->' → 400 INVALID_CORRIDOR_ID" is_error 400 INVALID_CORRIDOR_ID
get "/api/v1/corridors/$(enc "USDC:$BAD_ISSUER->XLM:native")"
check "corridor id with a bad issuer StrKey → 400" is_error 400 INVALID_CORRIDOR_ID
get "/api/v1/corridors/$(enc "$C1")?period=1y"
check "corridor by id with period=1y → 400 naming period" is_error 400 INVALID_PARAMETER period

# === 2c: anchors (reads) ==================================================================
V='.anchors[].id'
get /api/v1/anchors
check "anchors 200, total 5" eval 'is_status 200 && jqb ".total == 5 and (.anchors | length == 5)"'
check "anchor items carry every field" jqb '.anchors | all(has("id") and has("name")
  and has("stellar_account") and has("home_domain") and has("total_transactions")
  and has("successful") and has("failed") and has("reliability_score") and has("status"))'
check "statuses are green/yellow/red (null only for the never-measured anchor 5)" \
  jqb '[.anchors[] | select(.id != 5) | .status] | all(. == "green" or . == "yellow" or . == "red")'
check "never-measured anchor: status and reliability_score null" \
  jqb '.anchors[] | select(.id == 5) | .status == null and .reliability_score == null'
check "default sort: reliability desc, nulls last, ties by id" order_is "$V" "1,2,3,4,5"
get "/api/v1/anchors?sort_by=reliability&order=asc"
check "sort_by=reliability asc (nulls last)" order_is "$V" "3,2,1,4,5"
get "/api/v1/anchors?sort_by=transactions"
check "sort_by=transactions (desc)" order_is "$V" "4,1,2,3,5"
get "/api/v1/anchors?sort_by=transactions&order=asc"
check "sort_by=transactions asc" order_is "$V" "5,3,2,1,4"
get "/api/v1/anchors?sort_by=name"
check "sort_by=name (asc, case-insensitive)" order_is "$V" "1,2,4,5,3"
get "/api/v1/anchors?sort_by=name&order=desc"
check "sort_by=name desc" order_is "$V" "3,5,4,2,1"
get "/api/v1/anchors?status=green"
check "status=green" eval 'order_is "$V" "1" && jqb ".total == 1"'
get "/api/v1/anchors?status=yellow"
check "status=yellow" eval 'order_is "$V" "2" && jqb ".total == 1"'
get "/api/v1/anchors?status=red&sort_by=transactions&order=asc"
check "status=red sorted by transactions asc" eval 'order_is "$V" "3,4" && jqb ".total == 2"'
get "/api/v1/anchors?limit=2&offset=1"
check "anchors limit=2&offset=1, total 5" eval 'order_is "$V" "2,3" && jqb ".total == 5"'
get "/api/v1/anchors?status=red&limit=1&offset=1"
check "anchors status filter + paging: total counts the filtered set" \
  eval 'order_is "$V" "4" && jqb ".total == 2"'
get "/api/v1/anchors?status=purple"
check "status=purple → 400 naming status" is_error 400 INVALID_PARAMETER status

get /api/v1/anchors/1
check "anchor by id 200 {anchor, assets, metrics_history}" \
  eval 'is_status 200 && jqb ".anchor.id == 1 and .anchor.stellar_account == \$a and (.assets | length == 1) and .assets[0].asset_code == \"USDC\" and (.metrics_history | length == 2)" --arg a "$A1_ACCOUNT"'
check "metrics_history oldest first" \
  jqb '[.metrics_history[].recorded_at] == ([.metrics_history[].recorded_at] | sort)'
get /api/v1/anchors/999
check "unknown anchor id → 404 NOT_FOUND" is_error 404 NOT_FOUND
get /api/v1/anchors/abc
check "non-numeric anchor id → 400" is_error 400 INVALID_ANCHOR_ID
get /api/v1/anchors/0
check "anchor id 0 → 400" is_error 400 INVALID_ANCHOR_ID
get "/api/v1/anchors/account/$A1_ACCOUNT"
check "anchor by account 200 (anchor 1)" \
  eval 'is_status 200 && jqb ".anchor.id == 1 and has(\"assets\") and has(\"metrics_history\")"'
get "/api/v1/anchors/account/$UNKNOWN_ACCOUNT"
check "anchor by unknown (valid) account → 404" is_error 404 NOT_FOUND
get "/api/v1/anchors/account/$BAD_ACCOUNT"
check "anchor by account with one changed character → 400" is_error 400 INVALID_ACCOUNT_ID
get "/api/v1/anchors/account/$NEW_ACCOUNT"
check "anchor by the not-yet-created account → 404" is_error 404 NOT_FOUND

# === 2d: anchors (writes) =================================================================
get /api/v1/anchors  # cached now (the second GET of this key): the write must invalidate it
list_etag=$(header ETag)
anchor_body="{\"name\":\"Zeta Anchor\",\"stellar_account\":\"$NEW_ACCOUNT\",\"home_domain\":\"zeta.example.com\"}"
req POST /api/v1/anchors -H 'Content-Type: application/json' --data-binary "$anchor_body"
check "POST anchors without a token → 401 UNAUTHORIZED" is_error 401 UNAUTHORIZED
check "401 carries WWW-Authenticate: Bearer" eval '[[ "$(header WWW-Authenticate)" == Bearer* ]]'
req POST /api/v1/anchors -H 'Authorization: Bearer wrong' -H 'Content-Type: application/json' \
  --data-binary "$anchor_body"
check "POST anchors with a wrong token → 401" is_error 401 UNAUTHORIZED
check "wrong-token 401 carries WWW-Authenticate" eval '[[ "$(header WWW-Authenticate)" == Bearer* ]]'
req POST /api/v1/anchors -H 'Authorization: Bearer secret' -H 'Content-Type: text/plain' \
  --data-binary "$anchor_body"
check "POST anchors text/plain → 415" is_error 415 UNSUPPORTED_MEDIA_TYPE
post_json /api/v1/anchors '{"name": "x", '
check "POST anchors malformed JSON → 400 INVALID_JSON" is_error 400 INVALID_JSON
post_json /api/v1/anchors '[1, 2]'
check "POST anchors non-object JSON → 400 INVALID_JSON" is_error 400 INVALID_JSON
post_json /api/v1/anchors "{\"stellar_account\":\"$NEW_ACCOUNT\"}"
check "POST anchors without name → 422 naming name" is_error 422 VALIDATION_FAILED name
post_json /api/v1/anchors '{"name":"Zeta Anchor","stellar_account":"'"$BAD_ACCOUNT"'"}'
check "POST anchors with a bad stellar_account → 422 naming it" \
  is_error 422 VALIDATION_FAILED stellar_account
post_json /api/v1/anchors "$anchor_body"
check "POST anchors → 201" is_status 201
check "created anchor has the list shape" \
  jqb '(.id | type == "number") and .name == "Zeta Anchor" and .stellar_account == $a
       and .home_domain == "zeta.example.com" and has("total_transactions") and has("successful")
       and has("failed") and has("reliability_score") and has("status")' --arg a "$NEW_ACCOUNT"
# shellcheck disable=SC2034  # read inside an eval'd check
new_id=$(jq -r '.id // empty' "$work/body" 2>/dev/null)
post_json /api/v1/anchors "$anchor_body"
check "POST the same stellar_account again → 409 CONFLICT" is_error 409 CONFLICT
get /api/v1/anchors
check "anchors list after the write shows the new anchor (cache invalidated)" \
  eval 'jqb ".total == 6 and any(.anchors[]; .stellar_account == \$a)" --arg a "$NEW_ACCOUNT"'
check "anchors list ETag changed after the write" [ "$(header ETag)" != "$list_etag" ]
get "/api/v1/anchors/account/$NEW_ACCOUNT"
check "new anchor found by account" eval 'is_status 200 && jqb ".anchor.id == (\$id | tonumber)" --arg id "${new_id:-0}"'

asset_body="{\"asset_code\":\"EURT\",\"asset_issuer\":\"$I2\"}"
req POST /api/v1/anchors/1/assets -H 'Content-Type: application/json' --data-binary "$asset_body"
check "POST anchor assets without a token → 401" is_error 401 UNAUTHORIZED
post_json /api/v1/anchors/1/assets "$asset_body"
check "POST anchor assets → 201 {id, anchor_id, asset_code, asset_issuer, created_at}" \
  eval 'is_status 201 && jqb "(.id | type == \"number\") and .anchor_id == 1 and .asset_code == \"EURT\" and .asset_issuer == \$i and has(\"created_at\")" --arg i "$I2"'
post_json /api/v1/anchors/1/assets "$asset_body"
check "POST the same asset again → 409 CONFLICT" is_error 409 CONFLICT
post_json /api/v1/anchors/999/assets "$asset_body"
check "POST assets of an unknown anchor → 404" is_error 404 NOT_FOUND
post_json /api/v1/anchors/1/assets "{\"asset_code\":\"EURT\",\"asset_issuer\":\"$BAD_ISSUER\"}"
check "POST assets with a bad issuer → 422 naming asset_issuer" \
  is_error 422 VALIDATION_FAILED asset_issuer
post_json /api/v1/anchors/1/assets "{\"asset_issuer\":\"$I2\"}"
check "POST assets without asset_code → 422 naming asset_code" \
  is_error 422 VALIDATION_FAILED asset_code
post_json /api/v1/anchors/abc/assets "$asset_body"
check "POST assets of a non-numeric anchor id → 400" is_error 400 INVALID_ANCHOR_ID
get /api/v1/anchors/1
check "anchor 1 detail shows the added asset (cache invalidated)" \
  jqb '[.assets[].asset_code] == ["EURT", "USDC"]'

# === 2e: liquidity pools ==================================================================
V='.pools[].pool_id'
get /api/v1/liquidity-pools
check "pools 200, total 4" eval 'is_status 200 && jqb ".total == 4 and (.pools | length == 4)"'
check "pool items carry every field" jqb '.pools | all(has("pool_id") and has("fee_bp")
  and has("reserves") and has("total_shares") and has("total_trustlines") and has("volume_24h")
  and has("fees_24h") and has("apy") and has("last_synced_at"))'
check "reserves are [{asset, amount}]" \
  jqb '.pools | all(.reserves | type == "array" and length == 2 and all(has("asset") and has("amount")))'
check "figures not derived are null (P2: volume, fees, apy)" \
  jqb '.pools[] | select(.pool_id == $p) | .volume_24h == null and .fees_24h == null and .apy == null' --arg p "$P2"
check "default sort: tvl desc, null last" order_is "$V" "$P1,$P4,$P2,$P3"
get "/api/v1/liquidity-pools?sort_by=tvl&order=asc"
check "sort_by=tvl asc, null last" order_is "$V" "$P2,$P4,$P1,$P3"
get "/api/v1/liquidity-pools?sort_by=volume"
check "sort_by=volume desc, null last" order_is "$V" "$P3,$P1,$P4,$P2"
get "/api/v1/liquidity-pools?sort_by=volume&order=asc"
check "sort_by=volume asc, null last" order_is "$V" "$P4,$P1,$P3,$P2"
get "/api/v1/liquidity-pools?sort_by=fees&order=desc"
check "sort_by=fees desc, null last" order_is "$V" "$P3,$P1,$P4,$P2"
get "/api/v1/liquidity-pools?sort_by=fees&order=asc"
check "sort_by=fees asc, null last" order_is "$V" "$P4,$P1,$P3,$P2"
get "/api/v1/liquidity-pools?sort_by=apy"
check "sort_by=apy desc, nulls last (ties by pool_id)" order_is "$V" "$P3,$P1,$P2,$P4"
get "/api/v1/liquidity-pools?sort_by=apy&order=asc"
check "sort_by=apy asc, nulls last" order_is "$V" "$P1,$P3,$P2,$P4"
get "/api/v1/liquidity-pools?limit=2&offset=1"
check "pools limit=2&offset=1, total 4" eval 'order_is "$V" "$P4,$P2" && jqb ".total == 4"'
get "/api/v1/liquidity-pools?sort_by=liquidity"
check "pools sort_by=liquidity → 400 naming sort_by" is_error 400 INVALID_PARAMETER sort_by
get /api/v1/liquidity-pools/stats
check "pools/stats: sums over reporters, counted" \
  eval 'is_status 200 && jqb ".total_pools == 4 and .total_tvl == 1750000 and .pools_with_tvl == 3 and .total_volume_24h == 140000 and .pools_with_volume == 3 and .total_fees_24h == 420 and .avg_apy == 8.75 and .pools_with_apy == 2 and (.last_synced_at | type == \"number\")"'
get "/api/v1/liquidity-pools/$P1"
check "pool by id 200" eval 'is_status 200 && jqb ".pool_id == \$p and .tvl == 1000000 and .fee_bp == 30 and (.reserves | length == 2)" --arg p "$P1"'
get "/api/v1/liquidity-pools/$P_UNKNOWN"
check "unknown (valid) pool id → 404" is_error 404 NOT_FOUND
get /api/v1/liquidity-pools/not-a-pool
check "malformed pool id → 400 INVALID_POOL_ID" is_error 400 INVALID_POOL_ID
get "/api/v1/liquidity-pools/$(tr a-f A-F <<<"$P1")"
check "upper-case pool id → 400 INVALID_POOL_ID" is_error 400 INVALID_POOL_ID
get "/api/v1/liquidity-pools/$P1/snapshots"
check "pool snapshots 200, newest first, total 3" \
  eval 'is_status 200 && jqb ".pool_id == \$p and .total == 3 and (.snapshots | length == 3) and ([.snapshots[].snapshot_at] == ([.snapshots[].snapshot_at] | sort | reverse)) and (.snapshots | all(has(\"reserves\") and has(\"tvl\") and has(\"apy\")))" --arg p "$P1"'
get "/api/v1/liquidity-pools/$P1/snapshots?limit=1&offset=1"
check "pool snapshots paging: one item, total 3" jqb '(.snapshots | length == 1) and .total == 3 and .snapshots[0].tvl == 980000'
get "/api/v1/liquidity-pools/$P2/snapshots"
check "snapshots of a known pool without any: 200, empty" \
  eval 'is_status 200 && jqb ".snapshots == [] and .total == 0"'
get "/api/v1/liquidity-pools/$P_UNKNOWN/snapshots"
check "snapshots of an unknown pool → 404" is_error 404 NOT_FOUND
get /api/v1/liquidity-pools/XYZ/snapshots
check "snapshots with a malformed pool id → 400" is_error 400 INVALID_POOL_ID

# === 2f: trustlines =======================================================================
V='.rankings[].asset_code'
get /api/v1/trustlines/stats
check "trustlines/stats 200 with sums over reporters" \
  eval 'is_status 200 && jqb ".total_assets == 3 and .total_trustlines == 6500 and .authorized_trustlines == 6100 and .unauthorized_trustlines == 100 and .assets_reporting_authorization == 2 and (.last_updated | type == \"number\")"'
get /api/v1/trustlines/rankings
check "rankings 200, by accounts desc, total 3" \
  eval 'is_status 200 && order_is "$V" "USDC,BTC,EURT" && jqb ".total == 3 and [.rankings[].rank] == [1,2,3]"'
check "ranking items carry their fields" jqb '.rankings | all(has("asset_code") and has("asset_issuer")
  and has("num_accounts") and has("supply") and has("authorized_accounts") and has("updated_at"))'
get "/api/v1/trustlines/rankings?order=asc"
check "rankings accounts asc" order_is "$V" "EURT,BTC,USDC"
get "/api/v1/trustlines/rankings?sort_by=supply"
check "rankings sort_by=supply desc" order_is "$V" "EURT,USDC,BTC"
get "/api/v1/trustlines/rankings?sort_by=supply&order=asc"
check "rankings sort_by=supply asc" order_is "$V" "BTC,USDC,EURT"
get "/api/v1/trustlines/rankings?limit=1&offset=1"
check "rankings limit=1&offset=1: BTC ranked 2, total 3" \
  eval 'order_is "$V" "BTC" && jqb ".rankings[0].rank == 2 and .total == 3"'
get "/api/v1/trustlines/rankings?sort_by=holders"
check "rankings sort_by=holders → 400 naming sort_by" is_error 400 INVALID_PARAMETER sort_by
get "/api/v1/trustlines/USDC/$I1/history"
check "trustline history 200, newest first, total 3" \
  eval 'is_status 200 && jqb ".asset_code == \"USDC\" and .asset_issuer == \$i and .total == 3 and [.history[].num_accounts] == [5000, 4900, 4800] and (.history | all(has(\"snapshot_at\") and has(\"supply\")))" --arg i "$I1"'
get "/api/v1/trustlines/USDC/$I1/history?limit=2"
check "trustline history limit=2" jqb '(.history | length == 2) and .total == 3'
get "/api/v1/trustlines/EURT/$I2/history"
check "history of a known asset without snapshots: 200, empty" \
  eval 'is_status 200 && jqb ".history == [] and .total == 0"'
get "/api/v1/trustlines/ZZZ/$I1/history"
check "history of an unknown (valid) asset → 404" is_error 404 NOT_FOUND
get "/api/v1/trustlines/USDC/$BAD_ISSUER/history"
check "history with a bad issuer → 400 INVALID_ASSET" is_error 400 INVALID_ASSET
get "/api/v1/trustlines/THIRTEENCHARS/$I1/history"
check "history with a 13-character code → 400 INVALID_ASSET" is_error 400 INVALID_ASSET

# === 2g: admin shutdown reports ===========================================================
get /api/v1/admin/shutdown-reports
check "shutdown-reports without a token → 401" is_error 401 UNAUTHORIZED
check "its 401 carries WWW-Authenticate" eval '[[ "$(header WWW-Authenticate)" == Bearer* ]]'
get /api/v1/admin/shutdown-reports -H 'Authorization: Bearer secret'
# shellcheck disable=SC2034  # read inside an eval'd check
first_started=$(jq -r '.started_at_ms // empty' "$first_report" 2>/dev/null)
check "shutdown-reports 200 lists the first run's report" \
  eval 'is_status 200 && jqb ".total == 1 and (.reports | length == 1) and .reports[0].started_at_ms == (\$s | tonumber) and .reports[0].exit_code == 0 and (.reports[0].actors | type == \"array\")" --arg s "${first_started:-0}"'
get "/api/v1/admin/shutdown-reports?limit=0" -H 'Authorization: Bearer secret'
check "shutdown-reports limit=0 → 400 naming limit" is_error 400 INVALID_PARAMETER limit
get "/api/v1/admin/shutdown-reports?limit=201" -H 'Authorization: Bearer secret'
check "shutdown-reports limit=201 → 400 naming limit" is_error 400 INVALID_PARAMETER limit
get "/api/v1/admin/shutdown-reports?limit=x" -H 'Authorization: Bearer secret'
check "shutdown-reports limit=x → 400 naming limit" is_error 400 INVALID_PARAMETER limit

# === 3: caching and request ids ===========================================================
get /api/v1/trustlines/stats
h0=$(curl -s --max-time 5 "$base/api/v1/cache/stats" | jq -r '.hits // 0')
get /api/v1/trustlines/stats
get /api/v1/trustlines/stats
h1=$(curl -s --max-time 5 "$base/api/v1/cache/stats" | jq -r '.hits // 0')
check "cache hits grow with repeated GETs ($h0 → $h1)" [ "$h1" -ge $((h0 + 2)) ]

get "/api/v1/corridors?sort_by=attempts"
etag=$(header ETag)
check "a cached GET sends an ETag" [ -n "$etag" ]
check "and Cache-Control: public, max-age=60 (got '$(header Cache-Control)')" \
  [ "$(header Cache-Control)" = "public, max-age=60" ]
get "/api/v1/corridors?sort_by=attempts" -H "If-None-Match: $etag"
check "If-None-Match with the ETag → 304" is_status 304
check "the 304 repeats the ETag" [ "$(header ETag)" = "$etag" ]
# Byte-exact: nothing follows the 304's header on the wire (curl would hide a stray body).
timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf "GET /api/v1/corridors?sort_by=attempts HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\nConnection: close\r\n\r\n" "$2" >&3
  cat <&3' _ "$port" "$etag" >"$work/raw304" 2>/dev/null
check "the 304 has no body (nothing after the header on the wire)" \
  eval 'tr -d "\r" <"$work/raw304" >"$work/raw304.txt" && head -1 "$work/raw304.txt" | grep -q "^HTTP/1.1 304" && grep -qx "" "$work/raw304.txt" && [ -z "$(sed "1,/^$/d" "$work/raw304.txt")" ]'
rm -f "$work/hdr"
# shellcheck disable=SC2034  # read inside an eval'd check
head_status=$(curl -s --max-time 10 -I -o /dev/null -D "$work/hdr" -w '%{http_code}' \
  "$base/api/v1/corridors?sort_by=attempts")
check "HEAD of a cached GET → 200 with the same ETag" \
  eval '[ "$head_status" = 200 ] && [ "$(header ETag)" = "$etag" ]'
get "/api/v1/corridors?sort_by=attempts" -H 'If-None-Match: "0000000000000000"'
check "If-None-Match with another tag → 200 with the body" \
  eval 'is_status 200 && jqb ".total == 4"'
get /api/v1/anchors/1 -H 'X-Request-ID: api-test-req-0001'
check "X-Request-ID is echoed" [ "$(header X-Request-ID)" = "api-test-req-0001" ]
get /api/v1/anchors/1
rid1=$(header X-Request-ID)
get /api/v1/anchors/1
rid2=$(header X-Request-ID)
check "X-Request-ID generated when not sent (and unique: '$rid1' '$rid2')" \
  eval '[ -n "$rid1" ] && [ -n "$rid2" ] && [ "$rid1" != "$rid2" ]'
get /api/v1/anchors/999 -H 'X-Request-ID: api-test-req-0002'
check "an error body's request_id is the echoed X-Request-ID" \
  eval '[ "$(header X-Request-ID)" = api-test-req-0002 ] && jqb ".error.request_id == \"api-test-req-0002\""'

# === 2h: metrics (after traffic, so every labelled series exists) =========================
get /metrics
cp "$work/body" "$work/metrics.txt"
check "/metrics 200 text/plain" eval 'is_status 200 && [[ "$(header Content-Type)" == text/plain* ]]'
check "si_http_requests_total carries route labels" \
  grep -qE '^si_http_requests_total\{.*route="/api/v1/corridors".*\} [0-9]' "$work/metrics.txt"
check "si_http_requests_total labels a templated route" \
  grep -qE '^si_http_requests_total\{.*route="/api/v1/anchors/\{id\}".*\} [0-9]' "$work/metrics.txt"
if command -v promtool >/dev/null; then
  check "promtool check metrics passes" \
    eval 'out=$(promtool check metrics <"$work/metrics.txt" 2>&1) || { echo "$out" | head -10 | sed "s/^/#   /"; false; }'
else
  fail_now "promtool check metrics: promtool is not on PATH (install the 'prometheus' package)"
fi

# === 4: bad input; after each, /health still answers 200 ==================================
get /api/v1/nope
check "unknown route → 404 NOT_FOUND JSON" \
  eval 'is_error 404 NOT_FOUND && [[ "$(header Content-Type)" == application/json* ]]'
check "alive after unknown route" alive
req DELETE /api/v1/corridors
check "DELETE /api/v1/corridors → 405" is_error 405 METHOD_NOT_ALLOWED
check "405 carries Allow: GET (got '$(header Allow)')" eval '[[ "$(header Allow)" == *GET* ]]'
req PUT /api/v1/anchors
check "PUT /api/v1/anchors → 405 with Allow listing GET and POST (got '$(header Allow)')" \
  eval 'is_status 405 && [[ "$(header Allow)" == *GET* && "$(header Allow)" == *POST* ]]'
check "alive after wrong methods" alive
get "/api/v1/corridors?colour=blue"
check "unknown query parameter → 400 INVALID_PARAMETER naming it" \
  is_error 400 INVALID_PARAMETER colour
get "/health?x=1"
check "unknown query parameter on /health → 400 naming it" is_error 400 INVALID_PARAMETER x
for bad in "limit=0:limit" "limit=201:limit" "limit=abc:limit" "offset=-1:offset" \
    "sort_by=bogus:sort_by" "order=up:order" "period=1y:period" \
    "success_rate_min=101:success_rate_min" "success_rate_max=abc:success_rate_max" \
    "volume_min=-1:volume_min" "volume_max=NaN:volume_max" "asset_code=TOOLONGCODE123:asset_code"; do
  q="${bad%:*}"
  field="${bad##*:}"
  get "/api/v1/corridors?$q"
  check "corridors ?$q → 400 naming $field" is_error 400 INVALID_PARAMETER "$field"
done
get "/api/v1/anchors?limit=201"
check "anchors ?limit=201 → 400 naming limit" is_error 400 INVALID_PARAMETER limit
get "/api/v1/liquidity-pools?offset=-1"
check "pools ?offset=-1 → 400 naming offset" is_error 400 INVALID_PARAMETER offset
get "/api/v1/trustlines/rankings?order=up"
check "rankings ?order=up → 400 naming order" is_error 400 INVALID_PARAMETER order
get "/api/v1/anchors/1?history_limit=0"
check "anchor ?history_limit=0 → 400 naming history_limit" \
  is_error 400 INVALID_PARAMETER history_limit
check "alive after bad parameters" alive

get "/api/v1/corridors?asset_code=%ZZ"
check "malformed percent escape in the query → 400" is_status 400
check "the bad escape's 400 body is a JSON error" jqb '.error.code | type == "string"'
get "/api/v1/corridors?asset_code=%4"
check "truncated percent escape in the query → 400" is_status 400
get "/api/v1/anchors/account/%G1"
check "malformed percent escape in the path → 400" is_status 400
check "alive after bad escapes" alive

# A malformed request line, written raw: the server answers 400 JSON and closes.
raw=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf "GARBAGE\r\n\r\n" >&3
  cat <&3' _ "$port" 2>/dev/null | tr -d '\r')
check "malformed request line → 400" grep -q '^HTTP/1.1 400' <<<"$raw"
check "the malformed request line's 400 body is a JSON error" eval 'sed "1,/^$/d" <<<"$raw" | jq -e ".error.code | type == \"string\"" >/dev/null'
check "alive after a malformed request line" alive
raw=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf "GET /health HTTP/9.9\r\nHost: x\r\n\r\n" >&3
  timeout 2 cat <&3' _ "$port" 2>/dev/null | tr -d '\r')
check "an unknown HTTP version is refused, not served (got '$(head -1 <<<"$raw")')" \
  eval '! grep -q "^HTTP/1.1 200" <<<"$raw"'
check "alive after a bad HTTP version" alive

big_header=$(head -c 20480 /dev/zero | tr '\0' a)
get /health -H "X-Big: $big_header"
check "a 20 KB header → 431" is_status 431
check "alive after an oversized header" alive

head -c $((1024 * 1024 + 4096)) /dev/zero | tr '\0' ' ' >"$work/big.json"
req POST /api/v1/anchors -H 'Authorization: Bearer secret' -H 'Content-Type: application/json' \
  -H 'Expect: 100-continue' --data-binary "@$work/big.json"
check "a body over 1 MiB → 413" is_status 413
check "alive after an oversized body" alive

# === end: a clean stop ====================================================================
stop_server
check "second run exits 0 on SIGTERM (got $stop_code)" [ "$stop_code" -eq 0 ]

finish http_api

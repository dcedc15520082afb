# shellcheck shell=bash
# shellcheck disable=SC2034  # SERVER_EXIT, STOP_MS...: set here, read by the sourcing script
# Helpers of the shutdown scenarios (scripts/chaos/sigterm-under-load.sh, timeouts.sh;
# docs/chaos.md). Source it after scripts/chaos/lib.sh; it defines functions only.
#
#   si_shutdown_arg OPTION VALUE MIN MAX   → VALUE if it is an integer in MIN..MAX, else a
#                                            usage error (exit 2) naming OPTION
#   si_shutdown_budget                     → the server's --print-shutdown-budget JSON for
#                                            CHAOS_DB, CHAOS_REDIS and CHAOS_SERVER_ENV
#   si_shutdown_stop LIMIT_S [SIGNAL]      → signals SERVER_PID (TERM) and waits at most
#                                            LIMIT_S for it: SERVER_EXIT, STOP_MS (signal to
#                                            exit); a server still running then is killed,
#                                            SERVER_EXIT=hung
#   si_shutdown_report_figures REPORT EXPECTED_JSON DEPENDS_JSON
#                                          → one JSON object: listed (every expected actor
#                                            present, no other), outcomes, order violations
#   si_shutdown_secs MS                    → MS as seconds for a setting ("1.250")
#   si_shutdown_ws_start DIR COUNT LIMIT_S → COUNT WebSocket clients (Node's `ws`, through
#                                            tests/ws_e2e/lib.mjs) on SERVER_URL's /ws,
#                                            subscribed to `payments`; returns once they all are
#   si_shutdown_ws_result DIR              → waits (bounded) for the clients' end; prints their
#                                            JSON figures (see below)
#   si_shutdown_load_start FILE CONNECTIONS → wrk (-t1) on SERVER_URL: GET /api/v1/corridors,
#                                            /api/v1/liquidity-pools and /health in turn
#   si_shutdown_load_stop                  → SIGINT (wrk prints its summary into FILE)
#   si_shutdown_requests                   → requests the server has answered (/metrics)
#   si_shutdown_answered N                 → true once it has answered at least N
#   si_shutdown_cleanup                    → kills the clients and wrk (for si_chaos_on_exit)
# wrk's figures: si_wrk_socket_figures (scripts/lib/bench.sh, shared with scripts/bench/drain.sh).

source "$SI_ROOT/scripts/lib/bench.sh"

# si_shutdown_arg OPTION VALUE MIN MAX: prints VALUE when it is a decimal integer from MIN to
# MAX; otherwise says what is wrong on stderr and exits 2 (run it in $(...) under set -e).
si_shutdown_arg() {
  local option="$1" value="$2" min="$3" max="$4"
  if [[ "$value" =~ ^[0-9]{1,9}$ ]] && [ "$((10#$value))" -ge "$min" ] \
    && [ "$((10#$value))" -le "$max" ]; then
    echo "$((10#$value))"
    return 0
  fi
  echo "${CHAOS_NAME:-chaos}: $option must be an integer from $min to $max, got '$value'" >&2
  exit 2
}

si_shutdown_secs() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }

# si_shutdown_budget: what the plan allows with the settings every later server start gets
# (critical path, deadlines and dependencies of every actor), from the binary itself: the
# scripts never restate the plan (actors/shutdown_plan.cpp).
si_shutdown_budget() {
  env -i PATH="$PATH" HOME="$CHAOS_WORK" DATABASE_URL="$CHAOS_DB" REDIS_URL="$CHAOS_REDIS" \
    "${CHAOS_SERVER_ENV[@]}" "$SI_BIN" --print-shutdown-budget
}

# si_shutdown_stop LIMIT_S [SIGNAL]: sends SIGNAL (default TERM) to SERVER_PID and waits for its
# exit, at most LIMIT_S seconds (a watchdog kills a server that is still running then: that is
# a hang, SERVER_EXIT=hung). Sets SERVER_EXIT and STOP_MS, the signal-to-exit time.
si_shutdown_stop() {
  local limit="$1" sig="${2:-TERM}" t0 watchdog
  [ -n "$SERVER_PID" ] || return 0
  t0=$(date +%s%N)
  kill -s "$sig" "$SERVER_PID"
  rm -f "$SERVER_DIR/hung"
  # The watchdog's sleep is the bound of the wait, not a synchronisation; ended early, it
  # takes its sleep with it.
  (
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    sleep "$limit" &
    nap=$!
    wait "$nap"
    kill -KILL "$SERVER_PID" 2>/dev/null && touch "$SERVER_DIR/hung"
  ) &
  watchdog=$!
  SERVER_EXIT=0
  wait "$SERVER_PID" || SERVER_EXIT=$?
  STOP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  SERVER_PID=""
  if [ -e "$SERVER_DIR/hung" ]; then
    SERVER_EXIT=hung
  fi
}

# si_shutdown_report_figures REPORT EXPECTED DEPENDS: REPORT is a SHUTDOWN_REPORT_PATH file,
# EXPECTED a JSON array of the plan's actors, DEPENDS the plan's {actor: [depends_on...]}.
# Prints {listed, missing, extra, not_ok: ["actor=outcome"...], order_violations: [...],
# actors: {name: {outcome, started_ms, duration_ms, detail}}, total_ms, exit_code}.
# An order violation is an actor whose drain started before one of its dependents (an actor
# that uses it) had reported: the cascade must stop users first.
si_shutdown_report_figures() {
  jq -c --argjson expected "$2" --argjson deps "$3" '
    . as $r
    | (reduce $r.actors[] as $a ({}; .[$a.actor] = $a)) as $by
    | ([$r.actors[].actor] | sort) as $listed
    | {
        listed: ($listed == ($expected | sort)),
        missing: (($expected - $listed)),
        extra: (($listed - $expected)),
        not_ok: [$r.actors[] | select(.outcome != "ok") | "\(.actor)=\(.outcome)"],
        order_violations: [
          $deps | to_entries[] | .key as $user | .value[] as $dep
          | select($by[$user] != null and $by[$dep] != null)
          | ($by[$user].started_ms + $by[$user].duration_ms) as $reported
          | select($by[$dep].started_ms < $reported)
          | "\($dep) started at \($by[$dep].started_ms) ms before \($user) reported at"
            + " \($reported) ms"
        ],
        actors: ($by | map_values({outcome, started_ms, duration_ms, detail})),
        total_ms: $r.total_ms,
        exit_code: $r.exit_code
      }' "$1"
}

SI_SHUTDOWN_WS_PID=""
SI_SHUTDOWN_WRK_PID=""

# The clients of si_shutdown_ws_start, written once into CHAOS_WORK: connect and subscribe,
# write DIR/ws.ready, then wait (at most LIMIT_S) for the server to close each connection and
# print what each one saw.
si_shutdown_write_clients() {
  [ ! -e "$CHAOS_WORK/ws_clients.mjs" ] || return 0
  cat >"$CHAOS_WORK/ws_clients.mjs" <<'JS'
import fs from 'node:fs';
const [lib, url, count, readyFile, limitS] = process.argv.slice(2);
const { Client } = await import(lib);
const clients = [];
for (let i = 0; i < Number(count); i += 16) {
  const batch = Math.min(16, Number(count) - i);
  clients.push(...await Promise.all(Array.from({ length: batch }, () => Client.connect(url, 10))));
}
const confirms = await Promise.all(clients.map((c) => c.subscribe(['payments'], 10)));
const subscribed = confirms.filter((m) => m?.type === 'subscription_confirm').length;
fs.writeFileSync(readyFile, String(subscribed));
const closes = await Promise.all(clients.map((c) => c.waitClosed(Number(limitS))));
const seen = clients.map((c, i) => {
  const close = closes[i];
  const shutdown = c.ofType('server_shutdown')[0];
  return {
    shutdown: shutdown !== undefined,
    code1001: close?.code === 1001,
    // Both close frames: the server's 1001 arrived and the client's answer went out before
    // the connection ended.
    clean: close !== null && c.ws._closeFrameReceived && c.ws._closeFrameSent,
    ordered: shutdown !== undefined && close !== null && shutdown._at <= close.at,
    payments: c.ofType('new_payment').length,
    code: close?.code ?? 'open',
  };
});
const n = (pred) => seen.filter(pred).length;
console.log(JSON.stringify({
  clients: clients.length,
  subscribed,
  server_shutdown: n((s) => s.shutdown),
  close_1001: n((s) => s.code1001),
  clean: n((s) => s.clean),
  ok: n((s) => s.shutdown && s.code1001 && s.clean && s.ordered),
  payments: seen.reduce((sum, s) => sum + s.payments, 0),
  codes: [...new Set(seen.map((s) => s.code))],
}));
process.exit(0);
JS
}

# si_shutdown_ws_start DIR COUNT LIMIT_S: installs the client once (npm ci in tests/ws_e2e,
# as its run.sh does), starts COUNT clients against SERVER_URL and waits for them to be
# subscribed. COUNT 0 starts nothing.
si_shutdown_ws_start() {
  local dir="$1" count="$2" limit="$3" e2e="$SI_ROOT/tests/ws_e2e"
  rm -f "$dir/ws.ready" "$dir/ws.json"
  [ "$count" -gt 0 ] || return 0
  if [ ! -f "$e2e/node_modules/ws/package.json" ]; then
    si_log "installing the WebSocket client (npm ci in tests/ws_e2e)"
    timeout 300 npm ci --prefix "$e2e" --no-audit --no-fund --loglevel=error >&2
  fi
  si_shutdown_write_clients
  node "$CHAOS_WORK/ws_clients.mjs" "$e2e/lib.mjs" "ws://${SERVER_URL#http://}/ws" "$count" \
    "$dir/ws.ready" "$limit" >"$dir/ws.json" 2>"$dir/ws.err" &
  SI_SHUTDOWN_WS_PID=$!
  si_chaos_wait "WebSocket clients subscribed" 60 test -s "$dir/ws.ready" || {
    cat "$dir/ws.err" >&2
    return 1
  }
}

# si_shutdown_ws_result DIR: the clients' figures once they have all ended (at most 60 s
# more): {clients, subscribed, server_shutdown, close_1001, clean, ok, payments, codes}, where
# ok counts the clients that got server_shutdown, then a 1001 close frame they answered.
si_shutdown_ws_result() {
  local dir="$1"
  if [ -n "$SI_SHUTDOWN_WS_PID" ]; then
    si_wait_for "WebSocket clients to end" 60 bash -c "! kill -0 $SI_SHUTDOWN_WS_PID" \
      || kill -KILL "$SI_SHUTDOWN_WS_PID" 2>/dev/null
    wait "$SI_SHUTDOWN_WS_PID" 2>/dev/null || true
    SI_SHUTDOWN_WS_PID=""
  fi
  if [ -s "$dir/ws.json" ]; then
    cat "$dir/ws.json"
  else
    echo '{"clients":0,"subscribed":0,"server_shutdown":0,"close_1001":0,"clean":0,"ok":0,'\
'"payments":0,"codes":[]}'
  fi
}

si_shutdown_load_start() {
  local file="$1" connections="$2"
  [ -e "$CHAOS_WORK/mix.lua" ] || cat >"$CHAOS_WORK/mix.lua" <<'LUA'
local paths = {"/api/v1/corridors", "/api/v1/liquidity-pools", "/health"}
local n = 0
request = function()
  n = n % #paths + 1
  return wrk.format("GET", paths[n])
end
LUA
  # Its duration only bounds it: si_shutdown_load_stop ends it.
  wrk -t1 -c"$connections" -d"$(si_chaos_left_s)s" --timeout 10s -s "$CHAOS_WORK/mix.lua" \
    "$SERVER_URL" >"$file" 2>&1 &
  SI_SHUTDOWN_WRK_PID=$!
}

si_shutdown_load_stop() {
  [ -n "$SI_SHUTDOWN_WRK_PID" ] || return 0
  kill -INT "$SI_SHUTDOWN_WRK_PID" 2>/dev/null || true  # wrk prints its summary on SIGINT
  si_wait_for "wrk to end" 10 bash -c "! kill -0 $SI_SHUTDOWN_WRK_PID" \
    || kill -KILL "$SI_SHUTDOWN_WRK_PID" 2>/dev/null
  wait "$SI_SHUTDOWN_WRK_PID" 2>/dev/null || true
  SI_SHUTDOWN_WRK_PID=""
}

si_shutdown_requests() {
  curl -sf --max-time 2 "$SERVER_URL/metrics" \
    | awk '/^si_http_requests_total/ {s += $2} END {print s + 0}'
}

# si_shutdown_answered N: the server has answered at least N requests (the load flows).
si_shutdown_answered() { [ "$(si_shutdown_requests)" -ge "$1" ]; }

# Stops whatever si_shutdown_* started (for si_chaos_on_exit).
si_shutdown_cleanup() {
  local pid
  for pid in "$SI_SHUTDOWN_WRK_PID" "$SI_SHUTDOWN_WS_PID"; do
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
  done
}

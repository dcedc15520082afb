# Starts and stops the webhook receiver (tests/webhooks_e2e/receiver.mjs: Node +
# `standardwebhooks`) for the webhook process test and bench. Source scripts/lib/common.sh
# first.
#   si_receiver_install                     → npm ci when node_modules is missing
#   si_start_receiver DIR [--bench]         → sets RECEIVER_PID, RECEIVER_URL
#   si_stop_receiver                        → SIGTERM, then SIGKILL after 5 s
#   si_receiver_config NAME SECRET MODE [JSON_EXTRA]   e.g. '"fail_first":2'
#   si_receiver_get PATH                    → GET RECEIVER_URL/PATH

RECEIVER_PID=""
RECEIVER_URL=""
SI_RECEIVER_DIR="$SI_ROOT/tests/webhooks_e2e"

si_receiver_install() {
  local tool
  for tool in node npm; do
    command -v "$tool" >/dev/null || { si_log "webhooks: $tool is required"; return 1; }
  done
  if [ ! -f "$SI_RECEIVER_DIR/node_modules/standardwebhooks/package.json" ]; then
    si_log "installing the webhook receiver's verifier (npm ci)"
    timeout 300 npm ci --prefix "$SI_RECEIVER_DIR" --no-audit --no-fund --loglevel=error \
      >&2 || return 1
  fi
}

si_start_receiver() {
  local dir="$1"
  shift
  mkdir -p "$dir"
  rm -f "$dir/receiver.port"
  node "$SI_RECEIVER_DIR/receiver.mjs" --port-file "$dir/receiver.port" "$@" \
    >"$dir/receiver.log" 2>&1 &
  RECEIVER_PID=$!
  si_wait_for "webhook receiver port" 15 test -s "$dir/receiver.port" || {
    cat "$dir/receiver.log" >&2
    return 1
  }
  RECEIVER_URL="http://127.0.0.1:$(cat "$dir/receiver.port")"
}

si_stop_receiver() {
  [ -n "$RECEIVER_PID" ] || return 0
  kill -TERM "$RECEIVER_PID" 2>/dev/null
  local i
  for i in $(seq 1 100); do
    kill -0 "$RECEIVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$RECEIVER_PID" 2>/dev/null
  wait "$RECEIVER_PID" 2>/dev/null
  RECEIVER_PID=""
}

si_receiver_config() {
  local name="$1" secret="$2" mode="$3" extra="${4:-}"
  curl -sf --max-time 5 -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"$name\",\"secret\":\"$secret\",\"mode\":\"$mode\"${extra:+,$extra}}" \
    "$RECEIVER_URL/_config" >/dev/null
}

si_receiver_get() {
  curl -sf --max-time 10 "$RECEIVER_URL/$1"
}

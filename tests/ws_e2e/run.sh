#!/usr/bin/env bash
# End-to-end test of /ws (tests/ws_e2e/e2e.mjs) with Node's `ws` client against the real
# server and the Horizon simulator. Installs the client (npm ci, from package-lock.json) when
# node_modules is missing. Usage: run.sh SERVER_BINARY SIM_BINARY
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

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "ws_e2e: $tool is required" >&2; exit 1; }
done
if [ ! -f "$here/node_modules/ws/package.json" ]; then
  si_log "installing the WebSocket test client (npm ci)"
  timeout 300 npm ci --prefix "$here" --no-audit --no-fund --loglevel=error || exit 1
fi

work=$(mktemp -d /tmp/si-ws-e2e.XXXXXX)
cleanup() {
  si_stop_sim
  if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A chain that keeps growing (one ledger every 250 ms) so that payments and sync changes
# keep flowing while the clients listen.
si_start_sim "$SIM" "$work/sim" --seed 5 --start-ledger 1000 --ledgers 30 --close-ms 250 \
  --tx-per-ledger 12 --pools 6 --assets 6 || exit 1
timeout 600 node "$here/e2e.mjs" "$BIN" "$SIM_URL" "$work"

# Helpers of the benchmarks in scripts/bench/: a release build, a seeded server, nginx.
# Source scripts/lib/common.sh first.

SI_BENCH_PACKAGES=(wrk nginx-light)

si_bench_setup() {
  SI_PACKAGES+=("${SI_BENCH_PACKAGES[@]}")
  si_install_deps
  SI_BUILD_TARGET=stellar-insights si_build "$SI_ROOT/build/release" Release >/dev/null
  SI_BIN="$SI_ROOT/build/release/stellar-insights"
  BENCH_DIR=$(mktemp -d /tmp/si-bench.XXXXXX)
  chmod 755 "$BENCH_DIR"  # nginx workers run as an unprivileged user
}

# Seeds N corridors (realistic ids, buckets in the last day) into an SQLite database.
si_bench_seed_corridors() {
  local db="$1" n="$2" now i
  now=$(( $(date +%s) * 1000 ))
  {
    echo "BEGIN;"
    for i in $(seq 1 "$n"); do
      local code="A$i" issuer="GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN"
      local id="XLM:native->$code:$issuer"
      echo "INSERT INTO corridors (id, source_asset_code, source_asset_issuer,"\
        "destination_asset_code, destination_asset_issuer, success_rate, total_attempts,"\
        "successful, failed, volume, last_updated) VALUES ('$id', 'XLM', 'native', '$code',"\
        "'$issuer', $((90 + i % 10)), $((1000 + i)), $((900 + i)), 100, $((i * 1000)).5, $now);"
      echo "INSERT INTO corridor_buckets (corridor_id, bucket_start, attempts, successful,"\
        "failed, volume) VALUES ('$id', $((now - 3600000)), $((1000 + i)), $((900 + i)), 100,"\
        "$((i * 1000)).5);"
    done
    echo "COMMIT;"
  } | sqlite3 "$db"
}

# si_bench_start_server NAME [VAR=value...]: runs the release binary on a fresh SQLite db.
si_bench_start_server() {
  local name="$1"
  shift
  SERVER_DIR="$BENCH_DIR/$name"
  mkdir -p "$SERVER_DIR"
  SERVER_PORT=$(si_free_port)
  (cd "$SERVER_DIR" && exec env -i PATH="$PATH" HOME="$SERVER_DIR" HOST=127.0.0.1 \
      PORT="$SERVER_PORT" DATABASE_URL="sqlite://$SERVER_DIR/si.db" LOG_LEVEL=warn \
      SHUTDOWN_REPORT_PATH="$SERVER_DIR/report.json" "$@" "$SI_BIN" 2>"$SERVER_DIR/log") &
  SERVER_PID=$!
  si_wait_for "server $name" 30 curl -sf "http://127.0.0.1:$SERVER_PORT/health"
}

si_bench_stop_server() {
  [ -n "${SERVER_PID:-}" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

# Serves FILE at URL path PATH with one nginx worker; sets NGINX_PORT.
si_bench_start_nginx() {
  local file="$1" path="$2" dir="$BENCH_DIR/nginx"
  mkdir -p "$dir/logs"
  NGINX_PORT=$(si_free_port)
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = $path { default_type application/json; alias $file; }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" &
  NGINX_PID=$!
  si_wait_for nginx 10 curl -sf "http://127.0.0.1:$NGINX_PORT$path"
}

si_bench_stop_nginx() {
  kill -QUIT "$NGINX_PID" 2>/dev/null
  wait "$NGINX_PID" 2>/dev/null
}

# si_wrk_socket_figures FILE: wrk's output in FILE as "REQUESTS CONNECT READ WRITE TIMEOUT
# NON2XX" (0 when absent). For a run that a server's drain ended: wrk reports a refused
# non-blocking connect as a connect or a write error (every reconnect after the acceptor
# closed, and after the exit), so a request sent and not answered shows as a read error or a
# timeout, and one answered with an error as non-2xx (scripts/bench/drain.sh,
# scripts/chaos/sigterm-under-load.sh).
si_wrk_socket_figures() {
  awk '/requests in/ {r = $1}
       /Socket errors/ {gsub(",", ""); c = $4; rd = $6; w = $8; t = $10}
       /Non-2xx/ {n = $NF}
       END {printf "%d %d %d %d %d %d\n", r, c, rd, w, t, n}' "$1"
}

# Parses wrk output on stdin into "REQ_PER_SEC P99_MS".
si_wrk_figures() {
  awk '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    END {printf "%s %s\n", rps, p99}'
}

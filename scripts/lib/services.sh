# Starts PostgreSQL 15 and Redis 7 as user processes on free loopback ports in a temp dir,
# exports SI_TEST_POSTGRES_URL / SI_TEST_REDIS_URL, and stops them in si_stop_services.
# Never systemd. As root (CI), PostgreSQL runs as the `postgres` user, since initdb refuses
# root. Source scripts/lib/common.sh first.

PG_BIN=/usr/lib/postgresql/15/bin
SI_SERVICES_DIR=""

si_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

si_start_postgres() {
  local dir="$SI_SERVICES_DIR/pg"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; chmod 700 "$dir"; fi
  local port
  port=$(si_free_port)
  si_as_pg "$PG_BIN/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 --no-locale \
    >"$SI_SERVICES_DIR/pg-initdb.log" 2>&1
  si_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -h 127.0.0.1 -c fsync=off -c full_page_writes=off" start >/dev/null
  si_as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres si_test
  export SI_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/si_test"
  export SI_TEST_PG_DIR="$dir"
  si_log "postgres 15 on 127.0.0.1:$port ($dir)"
}

si_start_redis() {
  local dir="$SI_SERVICES_DIR/redis"
  mkdir -p "$dir"
  local port
  port=$(si_free_port)
  cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $port
dir $dir
save ""
appendonly no
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
CONF
  redis-server "$dir/redis.conf"
  si_wait_for "redis on port $port" 20 redis-cli -h 127.0.0.1 -p "$port" ping
  export SI_TEST_REDIS_URL="redis://127.0.0.1:$port"
  export SI_TEST_REDIS_DIR="$dir"
  si_log "redis on 127.0.0.1:$port ($dir)"
}

si_start_services() {
  SI_SERVICES_DIR=$(mktemp -d /tmp/si-services.XXXXXX)
  chmod 755 "$SI_SERVICES_DIR"
  si_start_postgres
  si_start_redis
}

si_stop_services() {
  [ -n "$SI_SERVICES_DIR" ] || return 0
  if [ -d "$SI_SERVICES_DIR/pg/data" ]; then
    si_as_pg "$PG_BIN/pg_ctl" -D "$SI_SERVICES_DIR/pg/data" -m immediate -w stop \
      >/dev/null 2>&1 || true
  fi
  if [ -f "$SI_SERVICES_DIR/redis/redis.pid" ]; then
    kill "$(cat "$SI_SERVICES_DIR/redis/redis.pid")" 2>/dev/null || true
  fi
  rm -rf "$SI_SERVICES_DIR"
  SI_SERVICES_DIR=""
}

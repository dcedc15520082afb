# Shared helpers of scripts/run, scripts/test, the benches and chaos scripts.
# Source it; it defines functions only.

SI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages the project builds, tests and runs with.
SI_PACKAGES=(
  build-essential cmake ccache pkg-config clang-format
  libcaf-dev libboost-dev libhiredis-dev libsoci-dev libsqlite3-dev libpq-dev libssl-dev openssl
  libjemalloc-dev
  libspdlog-dev catch2 nlohmann-json3-dev libsimdjson-dev
  postgresql-15 postgresql-client-15 redis-server redis-tools sqlite3 jq curl procps
  prometheus python3 python3-yaml
)

# What scripts/fuzz adds (clang's libFuzzer and sanitizer runtimes): installed only there,
# as `si_install_deps "${SI_FUZZ_PACKAGES[@]}"`.
SI_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

si_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Installs whichever packages are missing (non-interactive); a no-op when all are there.
# Extra package names given as arguments are installed too (e.g. SI_FUZZ_PACKAGES).
si_install_deps() {
  local missing=()
  local p
  for p in "${SI_PACKAGES[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  si_log "installing missing packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# si_build DIR BUILD_TYPE [extra cmake args...]: configures once, builds with every core.
# SI_BUILD_TARGET=name builds one target only (the server for run and benchmarks).
si_build() {
  local dir="$1" type="$2"
  shift 2
  cmake -S "$SI_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" ${SI_BUILD_TARGET:+--target "$SI_BUILD_TARGET"}
}

# A free TCP port on 127.0.0.1 (nothing accepts on it right now), chosen below the kernel's
# ephemeral range so that no outgoing connection can be holding it.
si_free_port() {
  local p i low=32768
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  local span=$(( low - 10000 ))
  [ "$span" -gt 100 ] || span=100
  for i in $(seq 1 200); do
    p=$(( (RANDOM * 32768 + RANDOM) % span + 10000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# si_wait_for DESCRIPTION TIMEOUT_S COMMAND...: polls COMMAND every 50 ms until it succeeds
# (waiting on an event with a bound; not a sleep standing in for synchronisation).
# SI_TEST_TIMEOUT_SCALE (integer, default 1) multiplies every bound: scripts/test sets it for
# sanitizer builds, whose servers run several times slower.
si_wait_for() {
  local what="$1" limit=$(( $2 * ${SI_TEST_TIMEOUT_SCALE:-1} ))
  shift 2
  local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s%N)" -ge "$deadline" ]; then
      si_log "timed out after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.05
  done
}

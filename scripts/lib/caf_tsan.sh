# A ThreadSanitizer build of CAF's core library, for `scripts/test --sanitize=thread`.
#
# Debian's libcaf_core is not instrumented: ThreadSanitizer then cannot see the
# synchronisation inside CAF (mailboxes, reference counts, the scheduler) and reports every
# message handed from one actor's thread to another as a race. Suppressing those would hide
# real races in our own actors, so the thread build links a CAF built from the very source
# Debian builds its package from (the same 0.17.6 tarball, checked by its SHA-256 from
# Debian's .dsc), compiled with -fsanitize=thread. Source it; it defines functions only.

SI_CAF_VERSION=0.17.6
SI_CAF_TARBALL="actor-framework_${SI_CAF_VERSION}.orig.tar.gz"
SI_CAF_URL="${SI_CAF_URL:-http://deb.debian.org/debian/pool/main/a/actor-framework/$SI_CAF_TARBALL}"
SI_CAF_SHA256=e2bf5bd243f08bb7d8adde197cfe3e6d71314ed3378fe0692f8932f4c3b3928c

# si_caf_tsan DEPS_DIR: downloads, checks, builds and installs libcaf_core with
# -fsanitize=thread into DEPS_DIR/caf-tsan once (a stamp file marks a finished install);
# prints the install prefix.
si_caf_tsan() {
  local deps="$1"
  local prefix="$deps/caf-tsan"
  local stamp="$prefix/.si-built-$SI_CAF_VERSION-$SI_CAF_SHA256"
  if [ -f "$stamp" ]; then
    echo "$prefix"
    return 0
  fi
  mkdir -p "$deps"
  local tarball="$deps/$SI_CAF_TARBALL"
  if [ ! -f "$tarball" ] || ! echo "$SI_CAF_SHA256  $tarball" | sha256sum -c --quiet 2>/dev/null; then
    si_log "downloading CAF $SI_CAF_VERSION source ($SI_CAF_URL)"
    curl -fsSL --retry 3 --max-time 300 -o "$tarball.part" "$SI_CAF_URL"
    if ! echo "$SI_CAF_SHA256  $tarball.part" | sha256sum -c --quiet; then
      si_log "CAF source: SHA-256 mismatch (expected $SI_CAF_SHA256)"
      rm -f "$tarball.part"
      return 1
    fi
    mv "$tarball.part" "$tarball"
  fi
  local src="$deps/caf-src"
  rm -rf "$src" "$deps/caf-tsan-build" "$prefix"
  mkdir -p "$src"
  tar xzf "$tarball" -C "$src" --strip-components=1
  si_log "building CAF $SI_CAF_VERSION core with -fsanitize=thread"
  # Core only (the project uses nothing else); RelWithDebInfo-like flags keep the
  # instrumented library fast enough for the whole suite and its reports readable.
  cmake -S "$src" -B "$deps/caf-tsan-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -O1 -g -fno-omit-frame-pointer" \
    -DCAF_NO_IO=yes -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_OPENCL=yes \
    -DCAF_NO_OPENSSL=yes -DCAF_NO_PYTHON=yes -DCAF_NO_TOOLS=yes -DCAF_NO_SUMMARY=yes \
    -DCAF_NO_COMPILER_CHECK=yes >/dev/null
  cmake --build "$deps/caf-tsan-build" -j"$(nproc)" --target libcaf_core_shared >/dev/null
  cmake --install "$deps/caf-tsan-build" >/dev/null
  rm -rf "$src" "$deps/caf-tsan-build"
  touch "$stamp"
  echo "$prefix"
}

#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries BINARY links directly, one per
# line: the runtime image installs exactly these (apt adds their own dependencies).
# Usage: runtime-packages.sh BINARY. Fails naming any library no installed package provides.
set -euo pipefail
bin="${1:?usage: runtime-packages.sh BINARY}"
[ -x "$bin" ] || { echo "runtime-packages.sh: $bin is not an executable" >&2; exit 2; }

# The owning package of a library path; merged-/usr systems register either spelling.
owner() {
  local p="$1" c
  for c in "$p" "/usr$p" "${p#/usr}" "$(readlink -f "$p")"; do
    if dpkg-query -S "$c" 2>/dev/null | head -n 1 | cut -d: -f1; then
      return 0
    fi
  done
  return 1
}

mapfile -t needed < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ "${#needed[@]}" -gt 0 ] || { echo "runtime-packages.sh: $bin links no shared library" >&2; exit 1; }
resolved=$(ldd "$bin")
packages=()
for lib in "${needed[@]}"; do
  path=$(awk -v l="$lib" '$1 == l && $2 == "=>" { print $3 }' <<<"$resolved")
  if [ -z "$path" ] || [ "$path" = "not" ]; then
    echo "runtime-packages.sh: $lib is not found by the dynamic linker" >&2
    exit 1
  fi
  pkg=$(owner "$path") || { echo "runtime-packages.sh: no package provides $path" >&2; exit 1; }
  packages+=("$pkg")
done
printf '%s\n' "${packages[@]}" | sort -u

# Shared by the process-level test scripts: TAP-like checks and the closing count line.
# Source it after scripts/lib/common.sh.

passed=0
failed=0

# check NAME COMMAND...: runs COMMAND; counts and prints "ok" or "FAIL".
check() {
  local name="$1"
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   - $name"
  else
    failed=$((failed + 1))
    echo "FAIL - $name"
  fi
}

# fail_now MESSAGE: a failure that is not a command.
fail_now() {
  failed=$((failed + 1))
  echo "FAIL - $1"
}

# finish NAME: prints "NAME: N passed, M failed" and exits non-zero on any failure.
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

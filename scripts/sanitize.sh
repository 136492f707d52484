#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer and ThreadSanitizer (separate build folders).
#   bash scripts/sanitize.sh [address] [thread]
set -uo pipefail
cd "$(dirname "$0")/.."
KINDS=${*:-address thread}
status=0
for k in $KINDS; do
  echo "== $k sanitizer"
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1"
  swift build --build-tests --sanitize=$k --scratch-path .build-$k 2>&1 |
    grep -E "error|Compiling|Build complete" | tail -2
  swift test --skip-build --sanitize=$k --scratch-path .build-$k > /tmp/lfm-sanitize-$k.log 2>&1
  rc=$?
  grep -E "Executed [0-9]+ tests" /tmp/lfm-sanitize-$k.log | tail -1
  grep -E "ERROR: (Address|Thread)Sanitizer|WARNING: ThreadSanitizer|SUMMARY:" /tmp/lfm-sanitize-$k.log |
    sort | uniq -c | head -10
  echo "$k: exit $rc (log /tmp/lfm-sanitize-$k.log)"
  [ $rc -eq 0 ] || status=1
done
exit $status

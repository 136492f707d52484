#!/usr/bin/env bash
# Sets up (Debian packages, Python's gguf reader) and runs every test. No torch, no network beyond the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# ARM64 kernels (neon, neon-dotprod, neon-i8mm) under qemu: a few seconds
echo "== ARM64 kernel check (qemu)"
arm64_rc=0
bash scripts/arm64_check.sh --install | tail -4 || arm64_rc=$?
swift build --build-tests
# formatting (.swift-format: 120 columns) as a lint: a finding fails the run
lint=$(swift format lint -r Sources Tests Package.swift 2>&1 | grep "warning:" || true)
lint_n=$(printf "%s" "$lint" | grep -c "warning:" || true)
echo "format lint: $lint_n swift-format findings"
[ "$lint_n" -eq 0 ] || printf "%s\n" "$lint" | head -20
log=$(mktemp)
set +e
swift test --skip-build 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# XCTest's overall summary is the last "Executed N tests, with M failures" line; repeat it as a plain closing line
# (swift test's own last line reports the Swift Testing runner, which this project does not use).
summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 || true)
total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
rm -f "$log"
if [ -z "$summary" ]; then echo "no XCTest summary found"; exit 1; fi
if [ "$lint_n" -ne 0 ]; then echo "swift-format lint: $lint_n findings"; failed=$((failed + 1)); total=$((total + 1)); rc=1; fi
if [ "$arm64_rc" -ne 0 ]; then echo "ARM64 kernel check failed ($arm64_rc)"; failed=$((failed + 1)); total=$((total + 1)); rc=1; fi
echo "tests: $((total - failed)) passed, $failed failed"
exit "$rc"

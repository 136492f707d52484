#!/usr/bin/env bash
# Sets up (Debian packages, Python's gguf reader) and runs every test. No torch, no network beyond the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# ARM64 kernels (neon, neon-dotprod, neon-i8mm) under qemu: a few seconds
echo "== ARM64 kernel check (qemu)"
arm64_rc=0
timeout -k 30 600 bash scripts/arm64_check.sh --install | tail -4 || arm64_rc=$?
swift build --build-tests
# formatting (.swift-format: 120 columns) as a lint: a finding fails the run
lint=$(swift format lint -r Sources Tests Package.swift 2>&1 | grep "warning:" || true)
lint_n=$(printf "%s" "$lint" | grep -c "warning:" || true)
echo "format lint: $lint_n swift-format findings"
[ "$lint_n" -eq 0 ] || printf "%s\n" "$lint" | head -20
log=$(mktemp)
set +e
# every phase has a time limit (CI has 90 minutes): a hang fails the run and names the test that was running
timeout -k 30 1800 swift test --skip-build 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "swift test ran past its 30-minute limit; last test started: $(grep "started at" "$log" | tail -1)"
fi
set -e
# XCTest's overall summary is the last "Executed N tests, with M failures" line; repeat it as a plain closing line
# (swift test's own last line reports the Swift Testing runner, which this project does not use).
summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 || true)
total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
rm -f "$log"
if [ -z "$summary" ]; then echo "no XCTest summary found"; exit 1; fi
# `lfm-run serve` from Python clients (the openai client, a websockets realtime session, hostile inputs), then the
# live page in headless Chromium; both on one tiny bundle. Their counts join the closing line.
echo "== Python clients against lfm-run serve (Tests/python)"
pywork=$(mktemp -d /tmp/lfm-pytests.XXXXXX)
pylog=$(mktemp)
set +e
bundle=$(python3 Tests/python/serve_support.py --work "$pywork")
bundle_rc=$?
py_rc=1
page_rc=1
if [ "$bundle_rc" -eq 0 ]; then
  timeout -k 30 900 python3 Tests/python/test_serve.py --bundle "$bundle" 2>&1 | tee "$pylog"
  py_rc=${PIPESTATUS[0]}
  [ "$py_rc" -ne 124 ] || echo "the Python tests ran past their 15-minute limit"
  echo "== the live page in headless Chromium (scripts/page_check.py)"
  timeout -k 30 300 python3 scripts/page_check.py --bundle "$bundle" 2>&1 | grep -v "^user: \|^assistant: "
  page_rc=${PIPESTATUS[0]}
else
  echo "the tiny bundle for the Python tests could not be built"
fi
set -e
pyline=$(grep -E "^python tests: [0-9]+ passed, [0-9]+ failed" "$pylog" | tail -1 || true)
py_pass=$(echo "$pyline" | sed -nE 's/^python tests: ([0-9]+) passed.*/\1/p')
py_fail=$(echo "$pyline" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
rm -rf "$pylog" "$pywork"
# no summary line (a crash, a missing module) or a failing exit without failures counted: one failure
if [ -z "$pyline" ]; then py_pass=0; py_fail=1; fi
if [ "$py_rc" -ne 0 ] && [ "$py_fail" -eq 0 ]; then py_fail=1; fi
total=$((total + py_pass + py_fail)); failed=$((failed + py_fail))
[ "$py_rc" -eq 0 ] || rc=1
total=$((total + 1))
if [ "$page_rc" -ne 0 ]; then echo "page check failed ($page_rc)"; failed=$((failed + 1)); rc=1; fi
if [ "$lint_n" -ne 0 ]; then
  echo "swift-format lint: $lint_n findings"; failed=$((failed + 1)); total=$((total + 1)); rc=1
fi
if [ "$arm64_rc" -ne 0 ]; then
  echo "ARM64 kernel check failed ($arm64_rc)"; failed=$((failed + 1)); total=$((total + 1)); rc=1
fi
echo "tests: $((total - failed)) passed, $failed failed"
exit "$rc"

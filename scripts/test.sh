#!/usr/bin/env bash
# Sets up (Debian packages, Python's gguf reader) and runs every test. No torch, no network beyond the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
swift build --build-tests
swift test --skip-build

#!/usr/bin/env bash
# Sets up, builds, and converts the bundled tiny checkpoint (tiny-a, random weights made with the reference code)
# into a q8_0 bundle; then shows `inspect` and `verify --against`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product lfm-convert
BIN=.build/release/lfm-convert
WORK=$(mktemp -d /tmp/lfm-demo.XXXXXX)
cp -r Tests/Fixtures/tiny-a/model "$WORK/tiny-a"
# The fixture describes its detokenizer weights by a recipe (to stay small): regenerate them bit-exactly.
$BIN fixture-weights "$WORK/tiny-a"
$BIN "$WORK/tiny-a" -o "$WORK/tiny-a-q8_0.gguf" --quant q8_0
$BIN inspect "$WORK/tiny-a-q8_0.gguf" | head -40
$BIN verify "$WORK/tiny-a-q8_0.gguf" --against "$WORK/tiny-a" | tail -16
echo "demo: bundle at $WORK/tiny-a-q8_0.gguf"

#!/usr/bin/env bash
# Reference dumps of the committed fixtures for the `lfm-run parity` tests (Tests/Fixtures/parity), made by dump.py.
#   bash scripts/reference/make_parity_dumps.sh [/tmp/refenv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-/tmp/refenv/bin/python}
W=$(mktemp -d /tmp/parity-dumps.XXXXXX)
swift build -c release --product lfm-convert >/dev/null
for fx in tiny-a tiny-b; do
  cp -r Tests/Fixtures/$fx/model "$W/$fx"
  .build/release/lfm-convert fixture-weights "$W/$fx" >/dev/null   # detokenizer weights from the recipe
done
OUT=Tests/Fixtures/parity
mkdir -p $OUT
$PY scripts/reference/dump.py "$W/tiny-a" --mode chat --audio Tests/Fixtures/audio/speech.wav --steps 24 \
  --out $OUT/chat-tiny-a.safetensors
$PY scripts/reference/dump.py "$W/tiny-b" --mode asr --audio Tests/Fixtures/audio/speech.wav --steps 16 \
  --out $OUT/asr-tiny-b.safetensors
$PY scripts/reference/dump.py "$W/tiny-a" --mode tts --prompt "Speak now." --voice us-female --steps 12 \
  --depth-frames 2 --out $OUT/tts-tiny-a.safetensors
# the manifests name the temporary checkpoint folder; record the fixture instead
for f in $OUT/*.json; do
  sed -i -e "s#$W/#Tests/Fixtures/#g" \
    -e "s#Tests/Fixtures/\(tiny-[ab]\)\"#Tests/Fixtures/\1/model (detokenizer weights from its recipe)\"#g" "$f"
done
chmod 644 $OUT/*
rm -rf "$W"
ls -la $OUT

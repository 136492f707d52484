#!/usr/bin/env bash
# Sets up, builds, converts the bundled tiny checkpoint (tiny-a, random weights made with the reference code) into
# a q8_0 bundle, shows `inspect` and `verify --against`, then runs a text chat turn an ASR of the bundled WAV and a
# TTS sentence on the bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release
BIN=.build/release/lfm-convert
RUN=.build/release/lfm-run
WORK=$(mktemp -d /tmp/lfm-demo.XXXXXX)
cp -r Tests/Fixtures/tiny-a/model "$WORK/tiny-a"
# The fixture describes its detokenizer weights by a recipe (to stay small): regenerate them bit-exactly.
.build/release/fixture-weights "$WORK/tiny-a"
$BIN "$WORK/tiny-a" -o "$WORK/tiny-a-q8_0.gguf" --quant q8_0
$BIN inspect "$WORK/tiny-a-q8_0.gguf" | sed -n 1,40p
$BIN verify "$WORK/tiny-a-q8_0.gguf" --against "$WORK/tiny-a" | tail -n 16
# Text chat with the bundle (random weights: the words are noise, the pipeline is real), with statistics.
$RUN text --bundle "$WORK/tiny-a-q8_0.gguf" --system "You are a helpful assistant." --prompt "Hello! How are you?" \
  --max-tokens 24 --stats --verify
$RUN text --bundle "$WORK/tiny-a-q8_0.gguf" --prompt "Hello!" --max-tokens 4 --json
# ASR of the bundled WAV (22.05 kHz, resampled to 16 kHz, log-mel, conformer, adapter, "Perform ASR." prompt).
$RUN asr --bundle "$WORK/tiny-a-q8_0.gguf" --audio Tests/Fixtures/audio/speech.wav --max-tokens 16 --stats
# TTS: speak a sentence into a 24 kHz WAV (sequential mode; the LFM2 detokenizer decodes the frames as they come).
$RUN tts --bundle "$WORK/tiny-a-q8_0.gguf" --text "Speak now." --voice us-female -o "$WORK/speak-now.wav" \
  --max-tokens 60 --stats
echo "demo: bundle at $WORK/tiny-a-q8_0.gguf"

#!/usr/bin/env bash
# Installs what the project needs on Debian 12 with Swift 6.3: zlib and libsndfile (FLAC / Ogg / Opus / MP3 for
# `lfm-run serve`; both found through pkg-config), OpenBLAS (loaded at
# run time for large float GEMMs; optional, README "Kernels") and, for the tests, Python's `gguf` package (an
# independent GGUF reader). zstd is not used by anything and is not installed.
# Idempotent and quiet when all is there.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
pkg-config --exists zlib 2>/dev/null || need+=(libz-dev)
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
pkg-config --exists sndfile 2>/dev/null || need+=(libsndfile1-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" pkg-config >/dev/null
fi
if [ "${1:-}" = "--tests" ]; then
  python3 -c "import gguf" 2>/dev/null || {
    echo "setup: pip install gguf"
    python3 -m pip install --quiet --disable-pip-version-check gguf
  }
  # `lfm-run serve` from its clients (Tests/python: the openai client, websockets >= 13 for its sync client) and
  # the live page in headless Chromium (scripts/page_check.py: selenium, Debian chromium + chromium-driver)
  pips=()
  python3 -c "import openai" 2>/dev/null || pips+=(openai)
  python3 -c "import websockets.sync.client as c, websockets as w; assert int(w.__version__.split('.')[0]) >= 13" \
    2>/dev/null || pips+=("websockets>=13")
  python3 -c "import selenium" 2>/dev/null || pips+=(selenium)
  if [ ${#pips[@]} -gt 0 ]; then
    echo "setup: pip install ${pips[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${pips[@]}"
  fi
  web=()
  command -v chromium >/dev/null || web+=(chromium)
  command -v chromedriver >/dev/null || web+=(chromium-driver)
  if [ ${#web[@]} -gt 0 ]; then
    echo "setup: installing ${web[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${web[@]}" >/dev/null
  fi
fi

#!/usr/bin/env bash
# ARM64 kernels without ARM hardware: cross-compiles the CKernels sources and the C test driver
# (Tests/KernelCheck/kernel_check.c) with Debian's gcc-aarch64-linux-gnu and runs it under qemu-aarch64-static
# with `-cpu max` (which exposes dotprod and i8mm), so the neon, neon-dotprod and neon-i8mm tiers are each checked
# against the scalar reference. On an ARM64 host it builds and runs natively. Exit 0 when every tier passes.
#   bash scripts/arm64_check.sh [--install]     # --install: apt-get the cross compiler and qemu when missing
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
srcs=(Sources/CKernels/*.c Tests/KernelCheck/kernel_check.c)
if [ "$(uname -m)" = "aarch64" ]; then
  cc -O2 -ISources/CKernels/include "${srcs[@]}" -lm -lpthread -o "$out/check"
  "$out/check"
  exit $?
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
  if [ "${1:-}" = "--install" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "arm64_check: installing gcc-aarch64-linux-gnu qemu-user-static"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static >/dev/null
  else
    echo "arm64_check: needs gcc-aarch64-linux-gnu and qemu-user-static (run with --install)"; exit 2
  fi
fi
aarch64-linux-gnu-gcc -O2 -ffp-contract=off -static -DLFM_NO_DLOPEN -Wall -Wno-unknown-pragmas \
  -Wno-misleading-indentation -ISources/CKernels/include "${srcs[@]}" -lm -lpthread -o "$out/check"
qemu-aarch64-static -cpu max "$out/check"

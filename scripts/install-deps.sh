#!/usr/bin/env bash
# Installs what mllm needs to build and test, from Debian's packages only. Safe to re-run: it
# does nothing when everything is already there.
set -euo pipefail

packages=(
  g++ cmake make ninja-build pkg-config git python3
  libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
  # The Vulkan backend's build and its CI device (Mesa's lavapipe runs shaders on the CPU).
  glslang-tools libvulkan-dev mesa-vulkan-drivers vulkan-tools
  chromium  # headless browser for the dashboard page test (tests/dashboard)
)
if [ "$(uname -m)" = x86_64 ]; then
  # The SIMD kernels an x86 CI machine cannot run, in emulators (scripts/test-simd.sh): NEON
  # cross-built for aarch64 under QEMU; AVX-512 VNNI in Bochs booting Debian's kernel from an
  # ISO (scripts/run-in-bochs.sh).
  packages+=(
    qemu-user g++-aarch64-linux-gnu libc6-dev-arm64-cross
    bochs bochs-term bochsbios vgabios xorriso isolinux syslinux-common cpio xz-utils
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Builds everything with warnings as errors and runs every test: the GoogleTest suites (in
# parallel through ctest), the SIMD kernels of other CPUs in emulators (scripts/test-simd.sh),
# and the reference pack (llama.cpp's numbers on ../shared/models/ref) on
# every backend: the CPU, and Vulkan (Mesa's lavapipe on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build} scripts/build.sh -DMLLM_WERROR=ON
build_dir=${BUILD_DIR:-build}
ctest --test-dir "$build_dir" -j"$(nproc)" --output-on-failure --timeout 900
# The SIMD kernels this machine may lack (AVX-512 VNNI, NEON), in emulators on x86 (natively on
# an aarch64 machine), against the scalar kernels.
if [ "$(uname -m)" = x86_64 ]; then
  BUILD_DIR="$build_dir-avx512" scripts/test-simd.sh avx512
fi
BUILD_DIR="$build_dir-neon" scripts/test-simd.sh neon
if [ -x ../shared/tools/check-reference ]; then
  ../shared/tools/check-reference "$build_dir"
  ../shared/tools/check-reference "$build_dir" --backend vulkan
else
  echo "test.sh: ../shared/tools/check-reference not found; the reference pack was not run" >&2
  exit 1
fi

#!/usr/bin/env bash
# Tests the SIMD quantized matmul kernels this machine cannot run natively, in an emulator:
#   scripts/test-simd.sh neon     the NEON (Armv8.2 dot product) kernels: cross-compiled for
#                                 aarch64 (static) and run under QEMU user-mode emulation with a
#                                 CPU that has the dot product; natively on an aarch64 machine.
#   scripts/test-simd.sh avx512   the AVX-512 VNNI kernels: built for x86-64 (static) and booted
#                                 in Bochs on an emulated Tiger Lake (scripts/run-in-bochs.sh),
#                                 since QEMU's x86 emulation stops at AVX2.
# Both build tests/isa/simd_kernel_check.cpp with the kernels and what they need, with the
# project's warnings as errors, and install what is missing (cross compiler, QEMU, Bochs) with
# apt-get. scripts/test.sh (CI) runs both; they say nothing about speed (emulated timings mean
# nothing).
#   BUILD_DIR=DIR  where objects and the binary go (default: build-<target>)
#   JOBS=N         parallel compile jobs (default: 2)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-}
case "$target" in
  neon | avx512) ;;
  *)
    echo "usage: scripts/test-simd.sh neon|avx512" >&2
    exit 2
    ;;
esac
build_dir=${BUILD_DIR:-build-$target}
jobs=${JOBS:-2}

install_missing() {
  if [ $# -eq 0 ]; then return; fi
  echo "test-simd.sh: installing $*"
  local sudo_cmd=()
  if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "$@"
}

# As backends/cpu/CMakeLists.txt builds them: portable sources with the project flags, each SIMD
# file for its own instruction set (entered only after the run-time check).
flags=(-std=c++20 -O2 -I. -Wall -Wextra -Wpedantic -Wshadow=local -Wno-missing-field-initializers
  -Werror)
sources=(
  core/dtype.cpp
  core/quant/quant.cpp
  core/quant/quant_k.cpp
  core/quant/quant_simple.cpp
  backends/cpu/kernels/cpu_features.cpp
  backends/cpu/kernels/quant_matmul.cpp
  backends/cpu/kernels/quant_matmul_scalar.cpp
  tests/isa/simd_kernel_check.cpp
)
native=0
if [ "$target" = neon ]; then
  sources+=(backends/cpu/kernels/quant_matmul_neon.cpp)
  if [ "$(uname -m)" = aarch64 ]; then native=1; fi
  if [ "$native" = 1 ]; then
    cxx=${CXX:-g++}
    link_flags=()
  else
    cxx=aarch64-linux-gnu-g++
    link_flags=(-static)
    need=()
    command -v "$cxx" >/dev/null || need+=(g++-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
    install_missing "${need[@]}"
  fi
else
  if [ "$(uname -m)" != x86_64 ]; then
    echo "test-simd.sh: avx512 needs an x86-64 machine" >&2
    exit 2
  fi
  sources+=(backends/cpu/kernels/quant_matmul_avx2.cpp backends/cpu/kernels/quant_matmul_avx512.cpp)
  cxx=${CXX:-g++}
  link_flags=(-static)
  # Static libstdc++ and libc come with g++ and libc6-dev; Bochs comes in run-in-bochs.sh.
fi
simd_flags() {
  case "$1" in
    *_neon.cpp) echo "-march=armv8.2-a+dotprod+fp16" ;;
    *_avx2.cpp) echo "-mavx2 -mfma -mf16c -mbmi2" ;;
    *_avx512.cpp)
      echo "-mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni" \
        "-mprefer-vector-width=256"
      ;;
  esac
}

mkdir -p "$build_dir"
objects=()
pids=()
status=0
for src in "${sources[@]}"; do
  obj="$build_dir/$(echo "$src" | tr / _).o"
  objects+=("$obj")
  if [ "$obj" -nt "$src" ] && [ "$obj" -nt "$0" ] && [ -z "$(find core backends/cpu/kernels \
    tests/support \( -name '*.h' -o -name '*.inc' \) -newer "$obj" -print -quit)" ]; then
    continue
  fi
  echo "  CXX $src"
  # shellcheck disable=SC2046  # the flags are words
  "$cxx" "${flags[@]}" $(simd_flags "$src") -c "$src" -o "$obj" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
if [ "$status" != 0 ]; then
  echo "test-simd.sh: compile failed" >&2
  exit 1
fi
binary="$build_dir/simd_kernel_check"
"$cxx" "${link_flags[@]}" -pthread "${objects[@]}" -o "$binary"

step() {
  echo "+ $*"
  "$@"
}
if [ "$target" = neon ]; then
  # The kernels through the dispatch; then MLLM_CPU_ISA=scalar forcing the portable ones; then,
  # emulated, an Armv8.0 core (Cortex-A72: no dot product), where the run-time check must pick
  # the portable kernels and nothing outside *_neon.cpp may use a newer instruction.
  run=()
  # -cpu max: every extension QEMU emulates, the dot product and fp16 among them.
  if [ "$native" = 0 ]; then run=(qemu-aarch64 -cpu max); fi
  step "${run[@]}" "$binary"
  step env MLLM_CPU_ISA=scalar "${run[@]}" "$binary" --expect-isa scalar --dispatch-only
  if [ "$native" = 0 ]; then
    step qemu-aarch64 -cpu cortex-a72 "$binary" --expect-isa scalar --dispatch-only
  fi
else
  # On this machine first: if it has AVX2 but not AVX-512, the run-time check must pick AVX2,
  # and nothing outside *_avx512.cpp may use AVX-512 (an illegal instruction would end the run);
  # the AVX2 kernels pass the same checks. Then in Bochs: the AVX-512 VNNI kernels (against
  # scalar and bit for bit against AVX2), and MLLM_CPU_ISA=avx2 / scalar forcing the lower sets.
  if grep -qw avx512_vnni /proc/cpuinfo; then
    step "$binary"
  elif grep -qw avx2 /proc/cpuinfo; then
    step "$binary" --isa avx2
  fi
  step scripts/run-in-bochs.sh "$binary"
  step scripts/run-in-bochs.sh MLLM_CPU_ISA=avx2 "$binary" --expect-isa avx2 --dispatch-only
  step scripts/run-in-bochs.sh MLLM_CPU_ISA=scalar "$binary" --expect-isa scalar --dispatch-only
fi

#!/usr/bin/env bash
# Tests the NEON (Armv8.2 dot product) quantized matmul kernels on an x86 machine: cross-compiles
# tests/neon/neon_kernel_check.cpp with the kernels and what they need for aarch64 (static) and
# runs it under QEMU user-mode emulation with a CPU that has the dot product. Installs
# g++-aarch64-linux-gnu and qemu-user with apt-get when they are missing. A developer script:
# CI does not run it, and it says nothing about NEON speed (emulated timings mean nothing).
# On an aarch64 machine it builds natively and runs the binary directly.
#   BUILD_DIR=DIR  where objects and the binary go (default: build-neon)
#   JOBS=N         parallel compile jobs (default: 2)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-neon}
jobs=${JOBS:-2}

native=0
if [ "$(uname -m)" = aarch64 ]; then native=1; fi

if [ "$native" = 1 ]; then
  cxx=${CXX:-g++}
  link_flags=()
  run=()
else
  cxx=aarch64-linux-gnu-g++
  link_flags=(-static)
  need=()
  command -v "$cxx" >/dev/null || need+=(g++-aarch64-linux-gnu)
  command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
  if [ ${#need[@]} -gt 0 ]; then
    echo "test-neon.sh: installing ${need[*]}"
    sudo_cmd=()
    if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}"
  fi
  # -cpu max: every extension QEMU emulates, the dot product and fp16 among them.
  run=(qemu-aarch64 -cpu max)
fi

# As backends/cpu/CMakeLists.txt builds them: portable sources for the base Armv8.0 level,
# *_neon.cpp files for Armv8.2-A with the dot product and fp16 (entered only after the run-time
# check), every file with the project's warnings as errors.
flags=(-std=c++20 -O2 -I. -Wall -Wextra -Wpedantic -Wshadow=local -Wno-missing-field-initializers
  -Werror)
neon_flags=(-march=armv8.2-a+dotprod+fp16)
sources=(
  core/dtype.cpp
  core/quant/quant.cpp
  core/quant/quant_k.cpp
  core/quant/quant_simple.cpp
  backends/cpu/kernels/cpu_features.cpp
  backends/cpu/kernels/quant_matmul.cpp
  backends/cpu/kernels/quant_matmul_scalar.cpp
  backends/cpu/kernels/quant_matmul_neon.cpp
  tests/neon/neon_kernel_check.cpp
)

mkdir -p "$build_dir"
objects=()
pids=()
status=0
for src in "${sources[@]}"; do
  obj="$build_dir/$(echo "$src" | tr / _).o"
  objects+=("$obj")
  extra=()
  case "$src" in *_neon.cpp) extra=("${neon_flags[@]}") ;; esac
  if [ "$obj" -nt "$src" ] && [ "$obj" -nt "$0" ] && [ -z "$(find core backends/cpu/kernels \
    -name '*.h' -newer "$obj" -print -quit)" ]; then
    continue
  fi
  echo "  CXX $src"
  "$cxx" "${flags[@]}" "${extra[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
if [ "$status" != 0 ]; then
  echo "test-neon.sh: compile failed" >&2
  exit 1
fi
binary="$build_dir/neon_kernel_check"
"$cxx" "${link_flags[@]}" -pthread "${objects[@]}" -o "$binary"

# The kernels through the dispatch; then MLLM_CPU_ISA=scalar forcing the portable ones; then,
# emulated, an Armv8.0 core (Cortex-A72: no dot product), where the run-time check must pick
# the portable kernels and nothing outside *_neon.cpp may use a newer instruction.
echo "+ ${run[*]} $binary"
"${run[@]}" "$binary"
echo "+ MLLM_CPU_ISA=scalar ${run[*]} $binary --expect-isa scalar --dispatch-only"
MLLM_CPU_ISA=scalar "${run[@]}" "$binary" --expect-isa scalar --dispatch-only
if [ "$native" = 0 ]; then
  echo "+ qemu-aarch64 -cpu cortex-a72 $binary --expect-isa scalar --dispatch-only"
  qemu-aarch64 -cpu cortex-a72 "$binary" --expect-isa scalar --dispatch-only
fi

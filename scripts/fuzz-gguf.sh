#!/usr/bin/env bash
# Builds the GGUF reader fuzzer (clang + libFuzzer + ASan/UBSan) and runs it.
#   scripts/fuzz-gguf.sh [SECONDS] [extra libFuzzer flags...]
# SECONDS defaults to 300. Environment: BUILD_DIR (default build-fuzz), JOBS (build parallelism,
# default 2), FORK (parallel fuzzing processes, default 1).
# The corpus grows in $BUILD_DIR/fuzz/gguf-corpus across runs; crashes land in
# $BUILD_DIR/fuzz/artifacts/ and can be replayed with: $BUILD_DIR/tests/fuzz/fuzz_gguf <file>
set -euo pipefail

seconds="${1:-300}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-fuzz}"
jobs="${JOBS:-2}"
fork="${FORK:-1}"

if ! command -v clang++ >/dev/null; then
  echo "fuzz-gguf: clang++ not found (libFuzzer needs clang)" >&2
  exit 1
fi

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DMLLM_FUZZ=ON -DMLLM_BUILD_PERF=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_gguf make_gguf_seeds

work="$build/fuzz"
mkdir -p "$work/gguf-corpus" "$work/artifacts"
"$build/tests/fuzz/make_gguf_seeds" "$work/gguf-seeds"

fork_flag=()
if [ "$fork" -gt 1 ]; then fork_flag=(-fork="$fork"); fi

# The first corpus directory receives new inputs; the seeds are read only.
exec "$build/tests/fuzz/fuzz_gguf" "$work/gguf-corpus" "$work/gguf-seeds" \
  -dict="$root/tests/fuzz/gguf.dict" -max_total_time="$seconds" -max_len=4096 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
  "${fork_flag[@]}" "$@"

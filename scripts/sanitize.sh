#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UBSan (MLLM_SANITIZE) into BUILD_DIR (default:
# build-asan) and runs every test through ctest; the tests under tests/tools run the CLIs of the
# same build dir, so those are sanitized too. Then runs the sanitized CLIs on the shared models
# (skipped when ../shared/models is missing). Any sanitizer report fails the run.
#   JOBS=N  parallel build and test jobs (default: 2)
#   SKIP_MODELS=1  only build and run ctest
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-asan}
jobs=${JOBS:-2}

generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLLM_SANITIZE=ON \
  -DMLLM_BUILD_PERF=OFF -DMLLM_WERROR=ON "$@"
cmake --build "$build_dir" -j"$jobs"

# Any report stops the process with a non-zero status (UBSan is built with
# -fno-sanitize-recover); the extra ASan checks catch stack use after return and init-order bugs.
# LeakSanitizer stays on (ASan's default on Linux).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Every step runs even when an earlier one failed; the summary separates sanitizer reports from
# ordinary test failures, and the exit status is non-zero if anything failed.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
ctest --test-dir "$build_dir" -j"$jobs" --output-on-failure --timeout 1800 2>&1 | tee "$log" ||
  failed+=("ctest")

models=../shared/models
run() {
  echo "+ $*"
  "$@" 2>&1 | tee -a "$log" || failed+=("$(basename "$1") ${*:2}")
}
if [ "${SKIP_MODELS:-0}" != 1 ] && [ -d "$models" ]; then
  run "$build_dir/tools/mllm-run" -m "$models/aidreams260K.gguf" -p "" -n 60 --temp 0
  run "$build_dir/tools/mllm-run" -m "$models/ref/ref-qwen2-bpe.q4_k_m.gguf" -p "The license" -n 32 --temp 0
  run "$build_dir/tools/mllm-perplexity" -m "$models/ref/ref-llama-spm.q4_0.gguf" -f "$models/ref/text.txt" \
    -c 128 --chunks 4
else
  echo "sanitize.sh: model runs skipped"
fi

reports=$(grep -cE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$log" || true)
echo "sanitize.sh: $reports sanitizer report(s)"
if [ "${#failed[@]}" -ne 0 ]; then
  printf 'sanitize.sh: failed: %s\n' "${failed[@]}"
  exit 1
fi
echo "sanitize.sh: all sanitized runs passed"

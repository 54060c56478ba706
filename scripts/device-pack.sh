#!/usr/bin/env bash
# Packs what scripts/device-check.sh needs on a lent GPU machine (the workplace's `device`
# tool) into .dev/: the binaries of a build made here, the one shared library they need that
# such a machine lacks, and the test data from ../shared (which does not travel by itself).
# Usage: scripts/device-pack.sh [BUILD_DIR]   (then carry .dev and .gl; see docs/device.md)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rm -rf .dev
mkdir -p .dev/build/tools .dev/build/perf .dev/build/tests .dev/lib .dev/shared/models .dev/shared/tools
cp "$build"/tools/mllm-run "$build"/tools/mllm-perplexity .dev/build/tools/
cp "$build"/perf/mllm-bench .dev/build/perf/
cp "$build"/tests/test_backends "$build"/tests/test_runtime "$build"/tests/test_tools .dev/build/tests/
strip .dev/build/*/*
# Google Benchmark is a Debian shared library; glibc and libstdc++ are newer there.
cp -L "$(ldd "$build"/perf/mllm-bench | awk '/libbenchmark/ {print $3}')" .dev/lib/
cp -r ../shared/models/ref ../shared/models/aidreams260K.gguf .dev/shared/models/
cp ../shared/tools/check-reference .dev/shared/tools/
# The tests find their data and tools at these absolute paths, compiled in.
printf 'build=%s\nshared=%s\n' "$(realpath "$build")" "$(realpath ../shared)" >.dev/paths
grep -qx '/.dev/' .git/info/exclude || echo /.dev/ >>.git/info/exclude
du -sh .dev

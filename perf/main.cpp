// One benchmark binary for every suite in perf/ (Google Benchmark).
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();

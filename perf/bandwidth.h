#pragma once
// Memory read bandwidth of this machine, measured the way decode reads weights: a streaming
// read of a buffer far larger than the caches, split across threads.
#include <cstddef>

namespace mllm::perf {

// Best of `passes` reads over `bytes`, with `threads` threads; bytes per second.
double measure_read_bandwidth(size_t bytes = size_t{1} << 30, int threads = 2, int passes = 5);

}  // namespace mllm::perf

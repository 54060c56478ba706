#include "perf/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace mllm::perf {
namespace {

// Sums 64-bit words with four independent accumulators so the loop is load-bound, not
// add-latency-bound; the compiler vectorizes it with the project's -march flags.
uint64_t sum_words(const uint64_t* p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    for (; i < n; ++i) a += p[i];
    return a + b + c + d;
}

}  // namespace

double measure_read_bandwidth(size_t bytes, int threads, int passes) {
    const size_t words = bytes / sizeof(uint64_t);
    auto* data = static_cast<uint64_t*>(std::aligned_alloc(64, words * sizeof(uint64_t)));
    std::memset(data, 1, words * sizeof(uint64_t));  // touch every page before timing
    double best = 0;
    std::vector<uint64_t> sinks(static_cast<size_t>(threads));
    for (int pass = 0; pass < passes; ++pass) {
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                const size_t begin = words * static_cast<size_t>(t) / static_cast<size_t>(threads);
                const size_t end =
                    words * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
                sinks[static_cast<size_t>(t)] += sum_words(data + begin, end - begin);
            });
        }
        for (auto& th : pool) th.join();
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s);
    }
    std::free(data);
    volatile uint64_t keep = 0;
    for (uint64_t s : sinks) keep = keep + s;
    return best;
}

}  // namespace mllm::perf

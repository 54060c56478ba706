// The CPU backend's thread pool: how split() tiles a range, and parallel_for's contract (every
// index once, the ranges aligned, any thread count, back-to-back dispatches, destruction).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/thread_pool.h"

namespace mllm::cpu {
namespace {

TEST(ThreadPoolSplit, PartsTileTheRangeAligned) {
    for (int parts : {1, 2, 3, 4, 7}) {
        for (int64_t align : {1, 2, 3, 8, 32}) {
            for (int64_t n : {0, 1, 2, 5, 31, 32, 33, 100, 1001}) {
                SCOPED_TRACE("parts " + std::to_string(parts) + " align " + std::to_string(align) +
                             " n " + std::to_string(n));
                int64_t expect_begin = 0, min_units = std::numeric_limits<int64_t>::max(),
                        max_units = 0;
                for (int p = 0; p < parts; ++p) {
                    const auto [b, e] = ThreadPool::split(n, align, p, parts);
                    EXPECT_EQ(b, expect_begin);
                    EXPECT_LE(b, e);
                    EXPECT_TRUE(b % align == 0 || b == n) << "begin " << b;
                    EXPECT_TRUE(e % align == 0 || e == n);
                    const int64_t units = (e - b + align - 1) / align;
                    min_units = std::min(min_units, units);
                    max_units = std::max(max_units, units);
                    expect_begin = e;
                }
                EXPECT_EQ(expect_begin, n);
                EXPECT_LE(max_units - min_units, 1);  // balanced
            }
        }
    }
}

// i, after a few hundred nanoseconds of work the compiler can't drop: keeps each range long
// enough that the workers, not just the calling thread, get to claim chunks.
int64_t busy_work(int64_t i) {
    volatile int64_t acc = i;
    for (int k = 0; k < 64; ++k) acc = acc + 0;
    return acc;
}

struct Range {
    int64_t begin, end;
    int thread;
};

// Runs one parallel_for and checks what the contract promises.
void check_parallel_for(ThreadPool& pool, int64_t n, int64_t align) {
    SCOPED_TRACE("threads " + std::to_string(pool.size()) + " n " + std::to_string(n) + " align " +
                 std::to_string(align));
    std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 1)));
    std::vector<std::atomic<int>> busy(static_cast<size_t>(pool.size()));
    std::atomic<int> shared_thread_id{0};
    std::mutex mu;
    std::vector<Range> ranges;
    pool.parallel_for(n, align, [&](int64_t b, int64_t e, int thread) {
        if (thread >= 0 && thread < pool.size()) {
            // A thread id is per-thread scratch: never used by two calls at once.
            if (busy[static_cast<size_t>(thread)].exchange(1) != 0) shared_thread_id.fetch_add(1);
        }
        for (int64_t i = b; i < e; ++i)
            if (i >= 0 && i < n)
                hits[static_cast<size_t>(busy_work(i))].fetch_add(1, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lock(mu);
            ranges.push_back({b, e, thread});
        }
        if (thread >= 0 && thread < pool.size()) busy[static_cast<size_t>(thread)].store(0);
    });
    EXPECT_EQ(shared_thread_id.load(), 0);
    for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "index " << i;
    EXPECT_LE(static_cast<int>(ranges.size()), pool.size());
    if (n <= 0) {
        EXPECT_TRUE(ranges.empty());
        return;
    }
    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.begin < b.begin; });
    int64_t next = 0;
    for (const Range& r : ranges) {
        EXPECT_GE(r.thread, 0);
        EXPECT_LT(r.thread, pool.size());
        EXPECT_LT(r.begin, r.end) << "empty range passed to fn";
        EXPECT_EQ(r.begin, next) << "ranges must tile [0, n) contiguously";
        EXPECT_EQ(r.begin % align, 0);
        EXPECT_TRUE(r.end % align == 0 || r.end == n) << "end " << r.end;
        next = r.end;
    }
    EXPECT_EQ(next, n);
}

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
    for (int threads : {1, 2, 3, 4, 7}) {
        ThreadPool pool(threads);
        EXPECT_EQ(pool.size(), threads);
        for (int64_t align : {1, 2, 3, 4, 16, 64})
            for (int64_t n : {0, 1, 2, 3, 5, 16, 17, 63, 64, 65, 100, 1000, 1023})
                check_parallel_for(pool, n, align);
    }
}

TEST(ThreadPool, NonPositiveThreadCountMeansOne) {
    ThreadPool pool(0);
    EXPECT_EQ(pool.size(), 1);
    check_parallel_for(pool, 10, 1);
}

// 10000 back-to-back dispatches of varying sizes: each must complete, sum correctly, and no call
// of an earlier dispatch may run once it returned.
TEST(ThreadPool, StressBackToBackDispatches) {
    for (int threads : {2, 3}) {
        SCOPED_TRACE("threads " + std::to_string(threads));
        ThreadPool pool(threads);
        std::atomic<int64_t> current{-1};
        std::atomic<int64_t> stale_calls{0}, worker_calls{0};
        int64_t bad_sums = 0, total = 0;
        for (int64_t d = 0; d < 10000; ++d) {
            const int64_t n = 1 + (d * 7919) % 97;
            const int64_t align = 1 + d % 4;
            current.store(d);
            std::atomic<int64_t> sum{0};
            pool.parallel_for(n, align, [&, d](int64_t b, int64_t e, int thread_id) {
                if (current.load() != d) stale_calls.fetch_add(1);
                if (thread_id != 0) worker_calls.fetch_add(1);
                int64_t s = 0;
                for (int64_t i = b; i < e; ++i) s += busy_work(i) + 1;
                sum.fetch_add(s);
            });
            current.store(-1);
            if (sum.load() != n * (n + 1) / 2) ++bad_sums;
            total += sum.load();
        }
        // Not asserted (a loaded machine may starve the workers), but recorded: on an idle one
        // thousands of ranges run on the workers.
        RecordProperty("worker_calls_" + std::to_string(threads),
                       std::to_string(worker_calls.load()));
        EXPECT_EQ(bad_sums, 0);
        EXPECT_EQ(stale_calls.load(), 0);
        EXPECT_GT(total, 0);
    }
}

TEST(ThreadPool, DestructionWhileIdle) {
    // Never used: workers may not even have started when the pool goes away.
    for (int threads : {1, 2, 3, 4, 8}) {
        ThreadPool pool(threads);
    }
    // Used, then idle long enough that the workers stop spinning and sleep.
    for (int threads : {2, 3}) {
        ThreadPool pool(threads);
        check_parallel_for(pool, 100, 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        check_parallel_for(pool, 100, 1);  // wakes them
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    // Destroyed right after a dispatch, while workers are still spinning.
    for (int i = 0; i < 50; ++i) {
        ThreadPool pool(3);
        check_parallel_for(pool, 50, 1);
    }
}

}  // namespace
}  // namespace mllm::cpu

#pragma once
// A persistent pool for the CPU backend's kernels. A decode step runs hundreds of short parallel
// regions, so idle workers spin briefly on an atomic before sleeping (std::atomic::wait).
//
// Work is handed out as chunks claimed from an atomic counter, and the calling thread claims
// chunks too: when a worker is slow to wake (the machine is busy with other processes) the caller
// simply does that worker's chunk itself, instead of stalling every region on the scheduler.
#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace mllm::cpu {

class ThreadPool {
  public:
    explicit ThreadPool(int n_threads);  // n_threads >= 1
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Splits [0, n) into size() contiguous ranges (multiples of `align` except the last) and calls
    // fn(begin, end, thread) for each non-empty one; `thread` in [0, size()) identifies the
    // executing thread (for per-thread scratch). Returns when all ranges are done.
    template <typename Fn>
    void parallel_for(int64_t n, int64_t align, Fn&& fn) {
        if (n <= 0) return;
        auto chunk = [&](int64_t c, int thread) {
            const auto [begin, end] = split(n, align, static_cast<int>(c), n_threads_);
            if (begin < end) fn(begin, end, thread);
        };
        if (n_threads_ == 1 || n <= align) {
            fn(int64_t{0}, n, 0);
            return;
        }
        dispatch(n_threads_, &chunk,
                 [](void* f, int64_t c, int t) { (*static_cast<decltype(chunk)*>(f))(c, t); });
    }

    static std::pair<int64_t, int64_t> split(int64_t n, int64_t align, int part, int parts);

  private:
    using Trampoline = void (*)(void*, int64_t, int);
    // One dispatch's work. Two slots alternate by generation so a worker that wakes late can
    // never see a slot half rewritten: it re-checks the generation after announcing itself.
    struct Slot {
        void* fn = nullptr;
        Trampoline call = nullptr;
        int64_t n_chunks = 0;
        std::atomic<int64_t> next{0};
        std::atomic<int> in_flight{0};
    };

    void dispatch(int64_t n_chunks, void* fn, Trampoline call);
    void work_on(Slot& slot, int thread);
    void worker_loop(int index);

    int n_threads_;
    std::vector<std::thread> workers_;
    Slot slots_[2];
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
};

}  // namespace mllm::cpu

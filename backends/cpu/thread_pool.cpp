#include "backends/cpu/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MLLM_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define MLLM_CPU_RELAX() asm volatile("yield")
#else
#define MLLM_CPU_RELAX() ((void)0)
#endif

namespace mllm::cpu {
namespace {

// Roughly 50-100 microseconds of spinning: longer than the gap between two kernels of a decode
// step, far shorter than the gap between two user requests.
constexpr int kSpinIterations = 20000;

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& w : workers_) w.join();
}

std::pair<int64_t, int64_t> ThreadPool::split(int64_t n, int64_t align, int part, int parts) {
    const int64_t units = (n + align - 1) / align;
    const int64_t per = units / parts;
    const int64_t extra = units % parts;
    const int64_t begin_unit = part * per + std::min<int64_t>(part, extra);
    const int64_t end_unit = begin_unit + per + (part < extra ? 1 : 0);
    return {std::min(n, begin_unit * align), std::min(n, end_unit * align)};
}

void ThreadPool::work_on(Slot& slot, int thread) {
    for (;;) {
        const int64_t c = slot.next.fetch_add(1, std::memory_order_acq_rel);
        if (c >= slot.n_chunks) return;
        slot.call(slot.fn, c, thread);
    }
}

void ThreadPool::dispatch(int64_t n_chunks, void* fn, Trampoline call) {
    const uint64_t gen = generation_.load(std::memory_order_relaxed) + 1;
    Slot& slot = slots_[gen & 1];
    // A worker that woke for the dispatch before last may still be backing out of this slot.
    while (slot.in_flight.load(std::memory_order_acquire) != 0) MLLM_CPU_RELAX();
    slot.fn = fn;
    slot.call = call;
    slot.n_chunks = n_chunks;
    slot.next.store(0, std::memory_order_relaxed);
    // seq_cst on both sides (here and in worker_loop) so the store of the new generation and the
    // load of sleepers_ cannot pass each other: a worker going to sleep either sees the new
    // generation or is counted and woken.
    generation_.store(gen, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
    work_on(slot, 0);
    // Every chunk is claimed; wait for the ones other threads are still running.
    while (slot.in_flight.load(std::memory_order_acquire) != 0) MLLM_CPU_RELAX();
}

void ThreadPool::worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = generation_.load(std::memory_order_acquire);
        for (int spins = 0; gen == seen && spins < kSpinIterations; ++spins) {
            MLLM_CPU_RELAX();
            gen = generation_.load(std::memory_order_acquire);
        }
        if (gen == seen) {
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            gen = generation_.load(std::memory_order_seq_cst);
            while (gen == seen) {
                generation_.wait(seen, std::memory_order_acquire);
                gen = generation_.load(std::memory_order_acquire);
            }
            sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        }
        seen = gen;
        if (stop_.load(std::memory_order_acquire)) return;
        Slot& slot = slots_[gen & 1];
        slot.in_flight.fetch_add(1, std::memory_order_acq_rel);
        // Still the current dispatch? If the caller has moved on, this slot may be rewritten.
        if (generation_.load(std::memory_order_acquire) == gen) work_on(slot, index);
        slot.in_flight.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace mllm::cpu

#pragma once
// Wall time per op of a CPU program's steps (MLLM_CPU_PROFILE=1): where a decode token's time
// goes, as MLLM_VK_PROFILE shows it for Vulkan dispatches. Steps are timed on the calling thread,
// so a parallel op's time includes waiting for the slowest thread. Printed when the program ends.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace mllm::cpu {

class StepProfile {
  public:
    using Clock = std::chrono::steady_clock;

    // The index of a label (ops that share one are summed), created on first use. `bytes`: the
    // weight bytes the op reads per call, to report GB/s (0: none).
    int label(const std::string& name, int64_t bytes);
    void add(int label, Clock::duration time) {
        entries_[static_cast<size_t>(label)].time += time;
        ++entries_[static_cast<size_t>(label)].calls;
    }
    void end_step() { ++steps_; }
    // Per label, sorted by time: ms per step, share, calls per step, weight GB/s.
    void print(int64_t n_tokens) const;

  private:
    struct Entry {
        std::string name;
        int64_t bytes = 0;
        Clock::duration time{};
        int64_t calls = 0;
    };
    std::vector<Entry> entries_;
    int64_t steps_ = 0;
};

}  // namespace mllm::cpu

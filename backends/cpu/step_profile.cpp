#include "backends/cpu/step_profile.h"

#include <algorithm>
#include <cstdio>

namespace mllm::cpu {

int StepProfile::label(const std::string& name, int64_t bytes) {
    for (size_t i = 0; i < entries_.size(); ++i)
        if (entries_[i].name == name) return static_cast<int>(i);
    entries_.push_back({name, bytes});
    return static_cast<int>(entries_.size() - 1);
}

void StepProfile::print(int64_t n_tokens) const {
    if (steps_ == 0) return;
    using Ms = std::chrono::duration<double, std::milli>;
    Ms total{};
    for (const Entry& e : entries_) total += e.time;
    std::vector<const Entry*> rows;
    for (const Entry& e : entries_) rows.push_back(&e);
    std::sort(rows.begin(), rows.end(),
              [](const Entry* a, const Entry* b) { return a->time > b->time; });
    const double steps = static_cast<double>(steps_);
    std::fprintf(stderr, "[mllm] cpu profile, %lld-token step: %.3f ms per step (mean of %lld)\n",
                 static_cast<long long>(n_tokens), total.count() / steps,
                 static_cast<long long>(steps_));
    for (const Entry* e : rows) {
        const double ms = Ms(e->time).count();
        std::fprintf(stderr, "[mllm]   %-40s %8.3f ms  %5.1f%%  %4.0f calls", e->name.c_str(),
                     ms / steps, 100.0 * ms / total.count(), static_cast<double>(e->calls) / steps);
        if (e->bytes > 0 && ms > 0) {
            const double gbps =
                static_cast<double>(e->bytes) * static_cast<double>(e->calls) / (ms * 1e-3) / 1e9;
            std::fprintf(stderr, "  %6.1f GB/s of weights", gbps);
        }
        std::fputc('\n', stderr);
    }
}

}  // namespace mllm::cpu

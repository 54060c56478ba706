#pragma once
// Comparing logits and other float vectors in tests.
#include <algorithm>
#include <cmath>
#include <span>

namespace mllm::test {

inline double max_abs_diff(std::span<const float> a, std::span<const float> b) {
    double m = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i)
        m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
    return m;
}

inline double rms(std::span<const float> a) {
    double s = 0;
    for (float v : a) s += static_cast<double>(v) * v;
    return a.empty() ? 0.0 : std::sqrt(s / static_cast<double>(a.size()));
}

}  // namespace mllm::test

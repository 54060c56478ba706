#pragma once
// Rows for testing greedy picks (cpu::argmax, the Vulkan argmax, the sampler): random values with
// the awkward cases planted, by row: a tie for the maximum (the lower column must win), NaN first
// and next to the maximum (NaN never wins), a row of -inf and NaN only (column 0), the maximum in
// the last column.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace mllm::test {

inline std::vector<float> argmax_rows(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (float& v : x) v = dist(rng);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
        float* row = x.data() + r * cols;
        switch (r % 4) {
            case 0:
                row[cols / 3] = row[cols - 1] = 100.0f;
                break;
            case 1:
                row[0] = nan;
                row[cols / 2] = 100.0f;
                if (cols / 2 + 1 < cols) row[cols / 2 + 1] = nan;
                break;
            case 2:
                for (int64_t i = 0; i < cols; ++i) row[i] = i % 3 == 1 ? nan : -inf;
                break;
            case 3:
                row[cols - 1] = 100.0f;
                break;
        }
    }
    return x;
}

}  // namespace mllm::test

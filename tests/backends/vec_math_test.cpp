// The vectorized exp and SiLU against the C library's scalar expf, over the range softmax and
// SiLU use, with lengths that exercise both the 8-lane body and the scalar tail.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "backends/cpu/kernels/vec_math.h"

namespace mllm::cpu {
namespace {

TEST(VecMath, ExpMatchesExpf) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> dist(-87.0f, 88.0f);
    for (int n : {1, 7, 8, 9, 64, 1001}) {
        std::vector<float> x(static_cast<size_t>(n)), y;
        for (float& v : x) v = dist(rng);
        x[0] = 0.0f;
        y = x;
        exp_shifted_sum(y.data(), n, 0.0f);
        for (int i = 0; i < n; ++i) {
            const double want = std::exp(static_cast<double>(x[static_cast<size_t>(i)]));
            EXPECT_NEAR(y[static_cast<size_t>(i)] / want, 1.0, 4e-7)
                << "x=" << x[static_cast<size_t>(i)];
        }
    }
}

TEST(VecMath, ExpEdgeValues) {
    std::vector<float> x = {-INFINITY, -200.0f, -104.0f, 0.0f, 89.0f, INFINITY, -0.0f, 1.0f, 2.0f};
    exp_shifted_sum(x.data(), static_cast<int64_t>(x.size()), 0.0f);
    EXPECT_EQ(x[0], 0.0f);  // softmax's masked scores
    EXPECT_EQ(x[1], 0.0f);
    EXPECT_GE(x[2], 0.0f);
    EXPECT_EQ(x[3], 1.0f);
    EXPECT_TRUE(std::isinf(x[4]));
    EXPECT_TRUE(std::isinf(x[5]));
    EXPECT_EQ(x[6], 1.0f);
    EXPECT_NEAR(x[7], 2.718281828f, 1e-6f);
}

TEST(VecMath, ExpShiftedSumMatchesDoubleSoftmaxTerms) {
    // Softmax's use: scores shifted by their max, so every result is in (0, 1] and one is 1;
    // -inf (a masked score) gives 0.
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-30.0f, 30.0f);
    for (int n : {1, 7, 8, 9, 64, 1001}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = dist(rng);
        if (n > 2) x[1] = -INFINITY;
        const float shift = *std::max_element(x.begin(), x.end());
        std::vector<float> y = x;
        const float sum = exp_shifted_sum(y.data(), n, shift);
        double want_sum = 0;
        for (int i = 0; i < n; ++i) {
            // The shift is subtracted in float, as softmax's callers would.
            const float shifted = x[static_cast<size_t>(i)] - shift;
            const double want = std::exp(static_cast<double>(shifted));
            want_sum += want;
            EXPECT_NEAR(y[static_cast<size_t>(i)], want, 4e-7 * want)
                << "x=" << x[static_cast<size_t>(i)];
        }
        EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum) << "n=" << n;
    }
}

TEST(VecMath, SiluMulMatchesScalar) {
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> dist(-20.0f, 20.0f);
    for (int n : {3, 16, 35}) {
        std::vector<float> g(static_cast<size_t>(n)), u(g.size()), y(g.size()), s(g.size());
        for (size_t i = 0; i < g.size(); ++i) {
            g[i] = dist(rng);
            u[i] = dist(rng);
        }
        silu_mul(g.data(), u.data(), y.data(), n);
        silu_mul(g.data(), nullptr, s.data(), n);
        for (size_t i = 0; i < g.size(); ++i) {
            const double silu = g[i] / (1.0 + std::exp(-static_cast<double>(g[i])));
            EXPECT_NEAR(s[i], silu, 1e-6 * (1.0 + std::fabs(silu)));
            EXPECT_NEAR(y[i], silu * u[i], 1e-6 * (1.0 + std::fabs(silu * u[i])));
        }
    }
    // Saturation: large negative gates give -0, never NaN.
    float big[2] = {-200.0f, 200.0f};
    silu_mul(big, nullptr, big, 2);
    EXPECT_EQ(big[0], 0.0f);
    EXPECT_EQ(big[1], 200.0f);
}

}  // namespace
}  // namespace mllm::cpu

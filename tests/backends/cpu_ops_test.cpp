// CPU backend float kernels against plain scalar references written here.
//
// Every reference is the obvious loop in double precision; the kernels run in float, so each
// comparison allows float rounding (scaled by the size of the sums involved) and nothing more.
// Sizes are odd on purpose, and every row-ranged kernel is also run on a subrange to check that
// rows outside [row_begin, row_end) are left exactly as they were.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backends/cpu/kernels/attention.h"
#include "backends/cpu/kernels/float_ops.h"
#include "backends/cpu/kernels/matmul_f32.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant/quant.h"
#include "graph/ir.h"
#include "runtime/sampler.h"
#include "tests/support/argmax_rows.h"

namespace mllm::cpu {
namespace {

// A value no kernel computes: rows that must stay untouched are filled with it.
constexpr float kSentinel = -12345.25f;

std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

bool same_bits(float a, float b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

// Row subranges every row-wise kernel is run on, for a matrix of `rows` rows.
std::vector<std::pair<int64_t, int64_t>> row_ranges(int64_t rows) {
    std::vector<std::pair<int64_t, int64_t>> out = {{0, rows}, {rows / 2, rows / 2}};
    if (rows >= 3) out.push_back({1, rows - 1});
    if (rows >= 2) out.push_back({rows - 1, rows});
    return out;
}

// Checks rows [rb, re) of y against ref within tol(index) and that every other row still holds
// kSentinel.
template <typename Tol>
void expect_rows(const std::vector<float>& y, const std::vector<double>& ref, int64_t cols,
                 int64_t rb, int64_t re, Tol&& tol) {
    ASSERT_EQ(y.size(), ref.size());
    const int64_t rows = static_cast<int64_t>(y.size()) / cols;
    int failures = 0;
    for (int64_t r = 0; r < rows && failures < 10; ++r) {
        for (int64_t i = 0; i < cols && failures < 10; ++i) {
            const size_t at = static_cast<size_t>(r * cols + i);
            if (r >= rb && r < re) {
                const double err = std::fabs(static_cast<double>(y[at]) - ref[at]);
                if (!(err <= tol(at))) {
                    ADD_FAILURE() << "row " << r << " col " << i << ": got " << y[at] << ", want "
                                  << ref[at] << " (tol " << tol(at) << ")";
                    ++failures;
                }
            } else if (!same_bits(y[at], kSentinel)) {
                ADD_FAILURE() << "row " << r << " col " << i << " outside [" << rb << ", " << re
                              << ") was written: " << y[at];
                ++failures;
            }
        }
    }
}

// Relative-plus-absolute tolerance for results of magnitude |ref| computed with a few float
// operations.
auto rel_tol(const std::vector<double>& ref, double rel, double abs = 1e-7) {
    return [&ref, rel, abs](size_t at) { return abs + rel * std::fabs(ref[at]); };
}

constexpr int64_t kColsList[] = {1, 7, 33, 130, 1001};
constexpr int64_t kRows = 5;

// ---------------------------------------------------------------------------------------------
// Row-wise float ops

double ref_silu(double x) {
    return x / (1.0 + std::exp(-x));
}

TEST(CpuOpsFloat, RmsNormMul) {
    std::mt19937 rng(1);
    for (int64_t cols : kColsList) {
        for (bool weighted : {true, false}) {
            const auto x = random_floats(static_cast<size_t>(kRows * cols), rng, -3.0f, 3.0f);
            const auto w = random_floats(static_cast<size_t>(cols), rng, -2.0f, 2.0f);
            const float eps = 1e-5f;
            std::vector<double> ref(x.size());
            for (int64_t r = 0; r < kRows; ++r) {
                double ss = 0;
                for (int64_t i = 0; i < cols; ++i) ss += double{x[r * cols + i]} * x[r * cols + i];
                const double scale = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
                for (int64_t i = 0; i < cols; ++i) {
                    const size_t at = static_cast<size_t>(r * cols + i);
                    ref[at] = x[at] * scale * (weighted ? double{w[static_cast<size_t>(i)]} : 1.0);
                }
            }
            for (auto [rb, re] : row_ranges(kRows)) {
                SCOPED_TRACE("cols " + std::to_string(cols) + (weighted ? " w" : " no w") +
                             " rows [" + std::to_string(rb) + ", " + std::to_string(re) + ")");
                std::vector<float> y(x.size(), kSentinel);
                rms_norm_mul(x.data(), weighted ? w.data() : nullptr, y.data(), cols, eps, rb, re);
                expect_rows(y, ref, cols, rb, re, rel_tol(ref, 2e-6));
            }
        }
    }
}

TEST(CpuOpsFloat, RmsNormMulInPlaceAndTinyRows) {
    // A zero row normalizes to zero (eps keeps it finite); in place (x == y) is allowed.
    const int64_t cols = 17;
    std::vector<float> x(static_cast<size_t>(2 * cols), 0.0f);
    for (int64_t i = 0; i < cols; ++i)
        x[static_cast<size_t>(cols + i)] = 1e-3f * static_cast<float>(i + 1);
    std::vector<double> ref(x.size(), 0.0);
    double ss = 0;
    for (int64_t i = 0; i < cols; ++i) ss += double{x[cols + i]} * x[cols + i];
    const double scale = 1.0 / std::sqrt(ss / cols + 1e-6);
    for (int64_t i = 0; i < cols; ++i) ref[static_cast<size_t>(cols + i)] = x[cols + i] * scale;
    rms_norm_mul(x.data(), nullptr, x.data(), cols, 1e-6f, 0, 2);
    expect_rows(x, ref, cols, 0, 2, rel_tol(ref, 2e-6));
}

TEST(CpuOpsFloat, AddAndMulWithAndWithoutBroadcast) {
    std::mt19937 rng(2);
    for (int64_t cols : kColsList) {
        for (bool broadcast : {false, true}) {
            for (bool is_add : {true, false}) {
                const auto a = random_floats(static_cast<size_t>(kRows * cols), rng, -4.0f, 4.0f);
                const auto b = random_floats(static_cast<size_t>((broadcast ? 1 : kRows) * cols),
                                             rng, -4.0f, 4.0f);
                std::vector<double> ref(a.size());
                for (int64_t r = 0; r < kRows; ++r) {
                    for (int64_t i = 0; i < cols; ++i) {
                        const double av = a[static_cast<size_t>(r * cols + i)];
                        const double bv = b[static_cast<size_t>((broadcast ? 0 : r) * cols + i)];
                        ref[static_cast<size_t>(r * cols + i)] = is_add ? av + bv : av * bv;
                    }
                }
                for (auto [rb, re] : row_ranges(kRows)) {
                    SCOPED_TRACE(std::string(is_add ? "add" : "mul") + " cols " +
                                 std::to_string(cols) + (broadcast ? " broadcast" : "") +
                                 " rows [" + std::to_string(rb) + ", " + std::to_string(re) + ")");
                    std::vector<float> y(a.size(), kSentinel);
                    if (is_add) {
                        add(a.data(), b.data(), y.data(), cols, broadcast, rb, re);
                    } else {
                        mul(a.data(), b.data(), y.data(), cols, broadcast, rb, re);
                    }
                    // One float operation: exactly the rounded double result (ref is exact).
                    for (int64_t r = rb; r < re; ++r)
                        for (int64_t i = 0; i < cols; ++i) {
                            const size_t at = static_cast<size_t>(r * cols + i);
                            ASSERT_TRUE(same_bits(y[at], static_cast<float>(ref[at])))
                                << "row " << r << " col " << i;
                        }
                    expect_rows(y, ref, cols, rb, re, rel_tol(ref, 1.2e-7));
                }
                // In place into a (the executor may alias the output with an input).
                std::vector<float> y = a;
                if (is_add) {
                    add(y.data(), b.data(), y.data(), cols, broadcast, 0, kRows);
                } else {
                    mul(y.data(), b.data(), y.data(), cols, broadcast, 0, kRows);
                }
                expect_rows(y, ref, cols, 0, kRows, rel_tol(ref, 1.2e-7));
            }
        }
    }
}

// cpu::argmax is the sampler's greedy pick (which Session::eval_greedy stands in for).
TEST(CpuOpsFloat, ArgmaxIsTheSamplersGreedyPick) {
    for (int64_t cols : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{1001}}) {
        const int64_t rows = 8;
        const std::vector<float> x = test::argmax_rows(rows, cols, 3);
        std::vector<int32_t> y(static_cast<size_t>(rows), -1);
        argmax(x.data(), y.data(), cols, 0, rows);
        SamplerParams p;
        p.temperature = 0.0f;
        Sampler sampler(p);
        for (int64_t r = 0; r < rows; ++r)
            EXPECT_EQ(y[static_cast<size_t>(r)],
                      sampler.sample(x.data() + r * cols, static_cast<int32_t>(cols)))
                << "cols " << cols << " row " << r;
    }
    const std::vector<float> tie = {1.0f, 5.0f, 5.0f};
    int32_t id = -1;
    argmax(tie.data(), &id, 3, 0, 1);
    EXPECT_EQ(id, 1);
}

TEST(CpuOpsFloat, Silu) {
    std::mt19937 rng(3);
    for (int64_t cols : kColsList) {
        auto x = random_floats(static_cast<size_t>(kRows * cols), rng, -12.0f, 12.0f);
        // Extremes: exp(-x) overflows float for x < -88.7; the result must still be -0, not NaN.
        const float extremes[] = {-200.0f, -89.0f, -88.0f, -20.0f, 0.0f,
                                  1e-20f,  20.0f,  89.0f,  200.0f};
        for (size_t i = 0; i < std::size(extremes) && i < x.size(); ++i)
            x[i * 3 % x.size()] = extremes[i];
        std::vector<double> ref(x.size());
        for (size_t i = 0; i < x.size(); ++i) ref[i] = ref_silu(x[i]);
        for (auto [rb, re] : row_ranges(kRows)) {
            SCOPED_TRACE("cols " + std::to_string(cols) + " rows [" + std::to_string(rb) + ", " +
                         std::to_string(re) + ")");
            std::vector<float> y(x.size(), kSentinel);
            silu(x.data(), y.data(), cols, rb, re);
            expect_rows(y, ref, cols, rb, re, rel_tol(ref, 1e-6, 1e-30));
        }
    }
}

TEST(CpuOpsFloat, SwiGlu) {
    std::mt19937 rng(4);
    for (int64_t cols : kColsList) {
        const auto gate = random_floats(static_cast<size_t>(kRows * cols), rng, -12.0f, 12.0f);
        const auto up = random_floats(static_cast<size_t>(kRows * cols), rng, -3.0f, 3.0f);
        std::vector<double> ref(gate.size());
        for (size_t i = 0; i < gate.size(); ++i) ref[i] = ref_silu(gate[i]) * up[i];
        for (auto [rb, re] : row_ranges(kRows)) {
            SCOPED_TRACE("cols " + std::to_string(cols) + " rows [" + std::to_string(rb) + ", " +
                         std::to_string(re) + ")");
            std::vector<float> y(gate.size(), kSentinel);
            swiglu(gate.data(), up.data(), y.data(), cols, rb, re);
            expect_rows(y, ref, cols, rb, re, rel_tol(ref, 1e-6, 1e-30));
        }
        // In place into gate.
        std::vector<float> y = gate;
        swiglu(y.data(), up.data(), y.data(), cols, 0, kRows);
        expect_rows(y, ref, cols, 0, kRows, rel_tol(ref, 1e-6, 1e-30));
    }
}

// ---------------------------------------------------------------------------------------------
// Rope

struct RopeCase {
    graph::RopeMode mode;
    int n_head;
    int head_dim;
    float base;
    float freq_scale;
};

std::vector<double> ref_rope(const std::vector<float>& x, const std::vector<int32_t>& pos,
                             const RopeCase& c) {
    const int64_t cols = int64_t{c.n_head} * c.head_dim;
    const int half = c.head_dim / 2;
    std::vector<double> y(x.begin(), x.end());
    for (size_t r = 0; r < pos.size(); ++r) {
        for (int h = 0; h < c.n_head; ++h) {
            const size_t off = r * static_cast<size_t>(cols) + static_cast<size_t>(h * c.head_dim);
            for (int i = 0; i < half; ++i) {
                const double theta =
                    pos[r] * double{c.freq_scale} * std::pow(double{c.base}, -2.0 * i / c.head_dim);
                const int a = c.mode == graph::RopeMode::Normal ? 2 * i : i;
                const int b = c.mode == graph::RopeMode::Normal ? 2 * i + 1 : i + half;
                const double x0 = x[off + static_cast<size_t>(a)],
                             x1 = x[off + static_cast<size_t>(b)];
                y[off + static_cast<size_t>(a)] = x0 * std::cos(theta) - x1 * std::sin(theta);
                y[off + static_cast<size_t>(b)] = x0 * std::sin(theta) + x1 * std::cos(theta);
            }
        }
    }
    return y;
}

TEST(CpuOpsRope, NormalAndNeoxMatchDoubleReference) {
    const RopeCase cases[] = {
        {graph::RopeMode::Normal, 3, 40, 10000.0f, 1.0f},
        {graph::RopeMode::Neox, 3, 40, 10000.0f, 1.0f},
        {graph::RopeMode::Normal, 2, 64, 10000.0f, 0.25f},
        {graph::RopeMode::Neox, 5, 64, 1000000.0f, 1.0f},
        {graph::RopeMode::Normal, 1, 128, 500000.0f, 1.0f},
        {graph::RopeMode::Neox, 2, 128, 10000.0f, 0.5f},
        {graph::RopeMode::Neox, 1, 2, 10000.0f, 1.0f},
        {graph::RopeMode::Normal, 1, 256, 10000.0f, 1.0f},
    };
    std::mt19937 rng(5);
    const std::vector<int32_t> pos = {0, 1, 2, 17, 255, 1000, 4095};
    const int64_t rows = static_cast<int64_t>(pos.size());
    for (const RopeCase& c : cases) {
        graph::Attrs attrs;
        attrs.n_head = c.n_head;
        attrs.head_dim = c.head_dim;
        attrs.rope_mode = c.mode;
        attrs.rope_base = c.base;
        attrs.rope_freq_scale = c.freq_scale;
        const int64_t cols = int64_t{c.n_head} * c.head_dim;
        const auto x = random_floats(static_cast<size_t>(rows * cols), rng);
        const auto ref = ref_rope(x, pos, c);
        // The kernel builds theta_i by repeated float multiplication (as ggml does), so the angle
        // carries a relative error growing with i; theta_i * i peaks near i = d / (2 ln base).
        auto tol = [&](size_t at) {
            const double p =
                std::fabs(static_cast<double>(pos[at / static_cast<size_t>(cols)]) * c.freq_scale);
            return 2e-6 + 4e-7 * p * (1.0 + c.head_dim / (2.0 * std::log(double{c.base})));
        };
        for (auto [rb, re] : row_ranges(rows)) {
            SCOPED_TRACE(std::string(c.mode == graph::RopeMode::Normal ? "normal" : "neox") +
                         " heads " + std::to_string(c.n_head) + " hd " +
                         std::to_string(c.head_dim) + " base " + std::to_string(c.base) +
                         " scale " + std::to_string(c.freq_scale) + " rows [" + std::to_string(rb) +
                         ", " + std::to_string(re) + ")");
            std::vector<float> y(x.size(), kSentinel);
            rope(x.data(), pos.data(), y.data(), cols, attrs, rb, re);
            expect_rows(y, ref, cols, rb, re, tol);
        }
        // In place.
        std::vector<float> y = x;
        rope(y.data(), pos.data(), y.data(), cols, attrs, 0, rows);
        expect_rows(y, ref, cols, 0, rows, tol);
    }
}

TEST(CpuOpsRope, ModesDifferAndPositionZeroIsIdentity) {
    // Guards the reference itself: the two pairings really are different rotations.
    graph::Attrs attrs;
    attrs.n_head = 1;
    attrs.head_dim = 8;
    std::mt19937 rng(6);
    const auto x = random_floats(8, rng);
    const std::vector<int32_t> pos = {3};
    std::vector<float> normal(8), neox(8), at0(8);
    attrs.rope_mode = graph::RopeMode::Normal;
    rope(x.data(), pos.data(), normal.data(), 8, attrs, 0, 1);
    attrs.rope_mode = graph::RopeMode::Neox;
    rope(x.data(), pos.data(), neox.data(), 8, attrs, 0, 1);
    double diff = 0;
    for (int i = 0; i < 8; ++i) diff += std::fabs(normal[i] - neox[i]);
    EXPECT_GT(diff, 0.1);
    const std::vector<int32_t> zero = {0};
    rope(x.data(), zero.data(), at0.data(), 8, attrs, 0, 1);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(at0[i], x[i]);
}

// ---------------------------------------------------------------------------------------------
// Embed

TEST(CpuOpsEmbed, RowsMatchDequantizeRow) {
    std::mt19937 rng(7);
    const int64_t n_vocab = 11;
    for (DType type : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_K}) {
        for (int64_t cols : {int64_t{256}, int64_t{512}, int64_t{768}}) {
            const auto src = random_floats(static_cast<size_t>(n_vocab * cols), rng, -2.0f, 2.0f);
            const size_t rb = row_bytes(type, cols);
            std::vector<uint8_t> table(rb * static_cast<size_t>(n_vocab));
            for (int64_t v = 0; v < n_vocab; ++v)
                quantize_row(type, src.data() + v * cols,
                             table.data() + static_cast<size_t>(v) * rb, cols);
            const std::vector<int32_t> ids = {10, 0, 3, 3, 7, 1};
            const int64_t rows = static_cast<int64_t>(ids.size());
            std::vector<double> ref(static_cast<size_t>(rows * cols));
            std::vector<float> row(static_cast<size_t>(cols));
            for (int64_t r = 0; r < rows; ++r) {
                dequantize_row(type,
                               table.data() + static_cast<size_t>(ids[static_cast<size_t>(r)]) * rb,
                               row.data(), cols);
                for (int64_t i = 0; i < cols; ++i)
                    ref[static_cast<size_t>(r * cols + i)] = row[static_cast<size_t>(i)];
            }
            for (auto [rb0, re0] : row_ranges(rows)) {
                SCOPED_TRACE(std::string(dtype_name(type)) + " cols " + std::to_string(cols) +
                             " rows [" + std::to_string(rb0) + ", " + std::to_string(re0) + ")");
                std::vector<float> y(static_cast<size_t>(rows * cols), kSentinel);
                embed(table.data(), type, cols, ids.data(), y.data(), rb0, re0);
                expect_rows(y, ref, cols, rb0, re0, rel_tol(ref, 0.0, 0.0));  // bit-exact
            }
        }
    }
}

TEST(CpuOpsEmbed, F32TableIsCopiedExactly) {
    std::mt19937 rng(8);
    const int64_t cols = 13, n_vocab = 4;
    const auto table = random_floats(static_cast<size_t>(cols * n_vocab), rng);
    const std::vector<int32_t> ids = {3, 2};
    std::vector<float> y(static_cast<size_t>(2 * cols));
    embed(reinterpret_cast<const uint8_t*>(table.data()), DType::F32, cols, ids.data(), y.data(), 0,
          2);
    for (int64_t i = 0; i < cols; ++i) {
        EXPECT_EQ(y[static_cast<size_t>(i)], table[static_cast<size_t>(3 * cols + i)]);
        EXPECT_EQ(y[static_cast<size_t>(cols + i)], table[static_cast<size_t>(2 * cols + i)]);
    }
}

// ---------------------------------------------------------------------------------------------
// KV store + attention

constexpr uint16_t kHalfNaN = 0x7e00;
constexpr uint16_t kHalfMax = 0x7bff;       // 65504
constexpr uint16_t kHalfSentinel = 0xfbf0;  // a large negative half no test value rounds to

struct AttnCase {
    int n_head;
    int n_head_kv;
    int head_dim;
    int64_t n_past;
    int64_t n_tokens;
    float q_scale;  // large values make the softmax sharp (tests max subtraction)
};

std::string describe(const AttnCase& c) {
    return "heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + " hd " +
           std::to_string(c.head_dim) + " n_past " + std::to_string(c.n_past) + " n_tokens " +
           std::to_string(c.n_tokens) + " q_scale " + std::to_string(c.q_scale);
}

struct AttnFixture {
    AttnCase c;
    graph::Attrs attrs;
    int64_t width = 0;    // KV row: n_head_kv * head_dim
    int64_t q_width = 0;  // n_head * head_dim
    int64_t n_ctx = 0;
    std::vector<float> k_all, v_all;  // positions 0 .. n_past + n_tokens
    std::vector<float> q;             // n_tokens rows
    std::vector<uint16_t> k_cache, v_cache;

    AttnFixture(const AttnCase& ac, std::mt19937& rng) : c(ac) {
        attrs.n_head = c.n_head;
        attrs.n_head_kv = c.n_head_kv;
        attrs.head_dim = c.head_dim;
        attrs.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
        width = int64_t{c.n_head_kv} * c.head_dim;
        q_width = int64_t{c.n_head} * c.head_dim;
        n_ctx = c.n_past + c.n_tokens + 3;  // spare rows that must stay untouched
        const int64_t n_pos = c.n_past + c.n_tokens;
        k_all = random_floats(static_cast<size_t>(n_pos * width), rng);
        v_all = random_floats(static_cast<size_t>(n_pos * width), rng, -2.0f, 2.0f);
        q = random_floats(static_cast<size_t>(c.n_tokens * q_width), rng, -c.q_scale, c.q_scale);
        k_cache.assign(static_cast<size_t>(n_ctx * width), kHalfSentinel);
        v_cache.assign(static_cast<size_t>(n_ctx * width), kHalfSentinel);
    }

    KvLayer layer() { return KvLayer{k_cache.data(), v_cache.data(), n_ctx, width, c.head_dim}; }

    // Sets every column of position p's cache rows.
    void fill_position(int64_t p, uint16_t k, uint16_t v) {
        const KvLayer l = layer();
        for (int64_t i = 0; i < width; ++i) {
            k_cache[static_cast<size_t>(l.at(p, i))] = k;
            v_cache[static_cast<size_t>(l.at(p, i))] = v;
        }
    }

    // Stores positions [0, n_past) as an earlier step would have (in two row ranges), then this
    // step's n_tokens rows at n_past.
    void fill_cache() {
        const KvLayer l = layer();
        const int64_t mid = c.n_past / 3;
        kv_store(k_all.data(), v_all.data(), l, 0, 0, mid);
        kv_store(k_all.data(), v_all.data(), l, 0, mid, c.n_past);
        const float* k_step = k_all.data() + c.n_past * width;
        const float* v_step = v_all.data() + c.n_past * width;
        kv_store(k_step, v_step, l, c.n_past, 0, c.n_tokens);
    }

    // Naive softmax attention in double on the f16-rounded K and V.
    std::vector<double> reference(double* max_abs_score) const {
        const int group = c.n_head / c.n_head_kv;
        std::vector<double> out(static_cast<size_t>(c.n_tokens * q_width));
        *max_abs_score = 0;
        for (int64_t t = 0; t < c.n_tokens; ++t) {
            for (int h = 0; h < c.n_head; ++h) {
                const int64_t kvh = h / group;
                const int64_t n_keys = c.n_past + t + 1;
                std::vector<double> s(static_cast<size_t>(n_keys));
                double mx = -std::numeric_limits<double>::infinity();
                for (int64_t j = 0; j < n_keys; ++j) {
                    double dot = 0;
                    for (int i = 0; i < c.head_dim; ++i) {
                        const double kv = fp16_to_fp32(fp32_to_fp16(
                            k_all[static_cast<size_t>(j * width + kvh * c.head_dim + i)]));
                        dot +=
                            double{q[static_cast<size_t>(t * q_width + h * c.head_dim + i)]} * kv;
                    }
                    s[static_cast<size_t>(j)] = dot * attrs.attn_scale;
                    mx = std::max(mx, s[static_cast<size_t>(j)]);
                    *max_abs_score = std::max(*max_abs_score, std::fabs(s[static_cast<size_t>(j)]));
                }
                double sum = 0;
                for (double& e : s) sum += (e = std::exp(e - mx));
                for (int i = 0; i < c.head_dim; ++i) {
                    double acc = 0;
                    for (int64_t j = 0; j < n_keys; ++j) {
                        const double vv = fp16_to_fp32(fp32_to_fp16(
                            v_all[static_cast<size_t>(j * width + kvh * c.head_dim + i)]));
                        acc += s[static_cast<size_t>(j)] * vv;
                    }
                    out[static_cast<size_t>(t * q_width + h * c.head_dim + i)] = acc / sum;
                }
            }
        }
        return out;
    }

    // Runs attention for tasks [tb, te) into out (pre-filled by the caller) with an exactly
    // sized score buffer followed by a guard region that must stay untouched; prefetching the
    // cache rows (decode) or not (prefill).
    void run(std::vector<float>& out, int64_t tb, int64_t te, bool kv_from_memory = false) {
        const int64_t n_scores = kAttentionHeadsPerPass * (c.n_past + c.n_tokens);
        constexpr int64_t kGuard = 16;
        std::vector<float> scores(static_cast<size_t>(n_scores + kGuard), kSentinel);
        attention(q.data(), layer(), out.data(), c.n_past, attrs, tb, te, scores.data(),
                  kv_from_memory);
        for (int64_t i = n_scores; i < n_scores + kGuard; ++i)
            ASSERT_TRUE(same_bits(scores[static_cast<size_t>(i)], kSentinel))
                << "scores overrun at " << i;
    }
};

std::vector<AttnCase> attention_cases() {
    std::vector<AttnCase> out;
    // GQA groups of 3 (as SmolLM2), 1, 2, 7 (Qwen2.5-0.5B) and 8 (TinyLlama): heads sharing a
    // KV head are computed up to kAttentionHeadsPerPass at a time, in passes that task ranges
    // can cut anywhere.
    const std::pair<int, int> heads[] = {{6, 2}, {3, 1}, {4, 4}, {2, 2}, {14, 2}, {8, 1}};
    for (auto [nh, nkv] : heads)
        for (int hd : {40, 64, 36})
            for (int64_t n_past : {0, 1, 7, 33})
                for (int64_t n_tokens : {1, 5})
                    out.push_back({nh, nkv, hd, n_past, n_tokens, 1.0f});
    out.push_back({6, 2, 64, 20, 4, 40.0f});  // sharp softmax: scores in the hundreds
    out.push_back({3, 1, 40, 0, 9, 40.0f});
    out.push_back({2, 1, 128, 100, 3, 1.0f});
    return out;
}

double attention_tol(double max_abs_score) {
    return 2e-6 + 2e-7 * max_abs_score;
}

TEST(CpuOpsAttention, KvStoreWritesHalfRowsAtNPast) {
    std::mt19937 rng(9);
    for (const AttnCase& c : attention_cases()) {
        SCOPED_TRACE(describe(c));
        AttnFixture f(c, rng);
        f.fill_cache();
        const int64_t n_pos = c.n_past + c.n_tokens;
        const KvLayer l = f.layer();
        for (int64_t p = 0; p < f.n_ctx; ++p) {
            for (int64_t i = 0; i < f.width; ++i) {
                const size_t src = static_cast<size_t>(p * f.width + i);
                const size_t at = static_cast<size_t>(l.at(p, i));
                const uint16_t want_k = p < n_pos ? fp32_to_fp16(f.k_all[src]) : kHalfSentinel;
                const uint16_t want_v = p < n_pos ? fp32_to_fp16(f.v_all[src]) : kHalfSentinel;
                ASSERT_EQ(f.k_cache[at], want_k) << "k position " << p << " col " << i;
                ASSERT_EQ(f.v_cache[at], want_v) << "v position " << p << " col " << i;
            }
        }
    }
}

TEST(CpuOpsAttention, MatchesNaiveSoftmaxAttention) {
    std::mt19937 rng(10);
    for (const AttnCase& c : attention_cases()) {
        SCOPED_TRACE(describe(c));
        AttnFixture f(c, rng);
        f.fill_cache();
        double max_abs_score = 0;
        const auto ref = f.reference(&max_abs_score);
        const double tol = attention_tol(max_abs_score);
        const int64_t n_tasks = c.n_tokens * c.n_head;
        // Whole range, then a few task subranges (others must stay untouched).
        std::vector<std::pair<int64_t, int64_t>> ranges = {
            {0, n_tasks}, {n_tasks - 1, n_tasks}, {1, 1}};
        if (n_tasks > 4) ranges.push_back({2, n_tasks - 2});
        for (auto [tb, te] : ranges) {
            for (bool kv_from_memory : {false, true}) {
                SCOPED_TRACE("tasks [" + std::to_string(tb) + ", " + std::to_string(te) + ")" +
                             (kv_from_memory ? " prefetching" : ""));
                std::vector<float> out(ref.size(), kSentinel);
                f.run(out, tb, te, kv_from_memory);
                // A task is one (token, head) pair: head_dim columns of one row.
                expect_rows(out, ref, c.head_dim, tb, te, [tol](size_t) { return tol; });
            }
        }
    }
}

// Rows a query must not see are overwritten with NaN (poisons any use) or with a huge value
// (a zero key with value 65504, whose softmax weight would be far from negligible): results must
// not change. Rows after the whole batch are poisoned for all tokens; within the batch, token t
// runs alone with every later row poisoned too.
TEST(CpuOpsAttention, NeverSeesFuturePositions) {
    std::mt19937 rng(11);
    for (const AttnCase& c : attention_cases()) {
        for (bool nan_poison : {true, false}) {
            SCOPED_TRACE(describe(c) + (nan_poison ? " NaN poison" : " huge poison"));
            AttnFixture f(c, rng);
            f.fill_cache();
            double max_abs_score = 0;
            const auto ref = f.reference(&max_abs_score);
            const double tol = attention_tol(max_abs_score);
            const std::vector<uint16_t> k_clean = f.k_cache, v_clean = f.v_cache;
            for (int64_t t = 0; t < c.n_tokens; ++t) {
                SCOPED_TRACE("token " + std::to_string(t));
                f.k_cache = k_clean;
                f.v_cache = v_clean;
                for (int64_t p = c.n_past + t + 1; p < f.n_ctx; ++p)
                    f.fill_position(p, nan_poison ? kHalfNaN : uint16_t{0},
                                    nan_poison ? kHalfNaN : kHalfMax);
                std::vector<float> out(ref.size(), kSentinel);
                const int64_t tb = t * c.n_head, te = (t + 1) * c.n_head;
                f.run(out, tb, te);
                expect_rows(out, ref, c.head_dim, tb, te, [tol](size_t) { return tol; });
            }
        }
    }
}

TEST(CpuOpsAttention, PoisonIsDetectedWhenVisible) {
    // Sanity check of the test above: the same poison on a row the query does see changes the
    // result, so passing there means the rows really were not read.
    std::mt19937 rng(12);
    AttnFixture f({3, 1, 40, 4, 1, 1.0f}, rng);
    f.fill_cache();
    double max_abs_score = 0;
    const auto ref = f.reference(&max_abs_score);
    f.fill_position(2, uint16_t{0}, kHalfMax);
    std::vector<float> out(ref.size(), kSentinel);
    f.run(out, 0, 3);
    for (size_t i = 0; i < out.size(); ++i) EXPECT_GT(std::fabs(out[i] - ref[i]), 100.0) << i;
}

// ---------------------------------------------------------------------------------------------
// f32 matmul

TEST(CpuOpsMatmul, F32MatchesDoubleDot) {
    struct Shape {
        int64_t n, k, m;
    };
    const Shape shapes[] = {{1, 1, 1},    {1, 37, 19},  {1, 256, 64}, {1, 1000, 3}, {2, 37, 19},
                            {3, 64, 130}, {7, 100, 33}, {16, 65, 47}, {33, 8, 9}};
    std::mt19937 rng(13);
    for (const Shape& s : shapes) {
        const int64_t ldy = s.m + 3;  // padded output rows: the padding must stay untouched
        const auto x = random_floats(static_cast<size_t>(s.n * s.k), rng);
        const auto w_clean = random_floats(static_cast<size_t>(s.m * s.k), rng);
        std::vector<double> ref(static_cast<size_t>(s.n * ldy), 0.0), bound(ref.size(), 0.0);
        for (int64_t t = 0; t < s.n; ++t)
            for (int64_t r = 0; r < s.m; ++r) {
                double dot = 0, abs_dot = 0;
                for (int64_t i = 0; i < s.k; ++i) {
                    const double p = double{x[static_cast<size_t>(t * s.k + i)]} *
                                     w_clean[static_cast<size_t>(r * s.k + i)];
                    dot += p;
                    abs_dot += std::fabs(p);
                }
                ref[static_cast<size_t>(t * ldy + r)] = dot;
                bound[static_cast<size_t>(t * ldy + r)] = abs_dot;
            }
        std::vector<std::pair<int64_t, int64_t>> ranges = {{0, s.m}, {s.m - 1, s.m}, {0, 0}};
        if (s.m > 4) ranges.push_back({2, s.m - 1});
        if (s.m > 16) ranges.push_back({8, 16});
        for (auto [rb, re] : ranges) {
            SCOPED_TRACE("n " + std::to_string(s.n) + " k " + std::to_string(s.k) + " m " +
                         std::to_string(s.m) + " rows [" + std::to_string(rb) + ", " +
                         std::to_string(re) + ")");
            // Weight rows outside the range are NaN: they must not be read.
            std::vector<float> w = w_clean;
            for (int64_t r = 0; r < s.m; ++r)
                if (r < rb || r >= re)
                    std::fill_n(w.begin() + r * s.k, s.k, std::numeric_limits<float>::quiet_NaN());
            std::vector<float> y(ref.size(), kSentinel);
            matmul_f32(x.data(), s.n, s.k, w.data(), rb, re, y.data(), ldy);
            int failures = 0;
            for (int64_t t = 0; t < s.n; ++t)
                for (int64_t c = 0; c < ldy && failures < 10; ++c) {
                    const size_t at = static_cast<size_t>(t * ldy + c);
                    if (c >= rb && c < re) {
                        const double tol = 1e-6 + 1.2e-7 * static_cast<double>(s.k) * bound[at];
                        if (!(std::fabs(y[at] - ref[at]) <= tol)) {
                            ADD_FAILURE() << "t " << t << " row " << c << ": got " << y[at]
                                          << ", want " << ref[at];
                            ++failures;
                        }
                    } else if (!same_bits(y[at], kSentinel)) {
                        ADD_FAILURE()
                            << "t " << t << " column " << c << " outside the range was written";
                        ++failures;
                    }
                }
        }
    }
}

}  // namespace
}  // namespace mllm::cpu

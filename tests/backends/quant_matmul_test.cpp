// Fused quantized matmul kernels against the reference conversions of core/quant.
//
// For every weight type and every instruction set this machine runs, on ragged shapes:
//  1. against the float dot of the dequantized weight row with the dequantized activation: the
//     kernels compute exactly these products (integer sums, then scales), so only float
//     rounding separates them;
//  2. against the dot with the original float activation, within the bound that activation
//     quantization allows (|x - x_q| <= ~0.5 scale per element, summed with |w|);
//  3. SIMD against the scalar kernels, which form the same integer sums: only the order of the
//     float additions differs.
// Weights are random bytes with sane scale fields, so every quant bit pattern (and extreme
// sub-block scales) shows up; a test below checks the tolerances do catch a nibble-order slip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels/cpu_features.h"
#include "backends/cpu/kernels/quant_matmul.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant/blocks.h"
#include "core/quant/quant.h"
#include "tests/support/quant_matmul_problem.h"

namespace mllm::cpu {
namespace {

using namespace matmul_check;  // the shared problem builders and reference

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                  DType::Q4_1, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<Isa> isas_to_test() {
    std::vector<Isa> out;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::NeonDotprod})
        if (cpu_supports(isa)) out.push_back(isa);
    return out;
}

// Shapes with k a multiple of the type's block: one block, a few, (for 32-element blocks,
// processed 8 at a time) a group of 8 plus a ragged tail and two whole groups plus a tail,
// and sizes that split the prefill path into several token chunks.
std::vector<Shape> shapes_for(DType t) {
    const int64_t block = dtype_traits(t).block_size;
    std::vector<int64_t> ks = {256, 512, 1280};
    if (block < 256) ks = {32, 96, 224, 288, 416, 576};  // tails of 1, 3, 7, 1, 5, 2 blocks
    std::vector<Shape> out;
    for (int64_t k : ks) {
        for (int64_t rows : {1, 3, 7, 33}) {
            for (int64_t n_tokens : {1, 2, 5, 17}) {
                out.push_back({k, rows, 0, n_tokens});
                if (rows > 5) out.push_back({k, rows, 5, n_tokens});
            }
        }
    }
    if (block < 256) {
        // Real decode shapes whose rows are not whole groups of 8 blocks (SmolLM2 k = 576: 18
        // blocks, Qwen2.5 k = 896: 28) or are (k = 1536), one token: decode streams a thread's
        // rows as one run of blocks, so a range may start and end mid-group and mid-way through
        // the activation pattern (which repeats every 4 rows for k = 576, 2 for 896).
        for (int64_t k : {576, 896, 1536}) {
            for (int64_t rows : {1, 3, 7, 33}) {
                out.push_back({k, rows, 0, 1});
                if (rows > 1) out.push_back({k, rows, rows - 1, 1});  // the last row alone
                if (rows > 5) out.push_back({k, rows, 5, 1});
            }
        }
        out.push_back({576, 34, 13, 1});  // starts 2 blocks into a group, ends 4 into one
        out.push_back(
            {576, 41, 30, 1});  // starts 4 blocks into a group and 3 rows into the pattern
        out.push_back({896, 9, 3, 1});
        out.push_back({896, 64, 17, 1});
        // An odd block count with a pattern too long to prepare: one stream per row.
        out.push_back({32 * 189, 5, 1, 1});
    }
    if (t == DType::F32 || t == DType::F16 || t == DType::BF16) {
        // Float rows need not be multiples of 8.
        out.push_back({13, 7, 2, 5});
        out.push_back({1, 3, 0, 1});
    }
    // Many tokens over a long row: several token chunks in the prefill path.
    out.push_back({8192, 9, 1, 50});
    return out;
}

class QuantMatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(QuantMatmulTest, MatchesReferenceOnEveryIsa) {
    const DType t = GetParam();
    std::mt19937 rng(1234 + static_cast<unsigned>(t));
    for (const Shape& s : shapes_for(t)) {
        const Problem p = make_problem(t, s, rng);
        const Reference ref = reference(p);
        for (Isa isa : isas_to_test()) {
            SCOPED_TRACE(describe(t, s, isa));
            ASSERT_EQ(reference_mismatch(p, isa, ref), "");
        }
    }
}

TEST_P(QuantMatmulTest, SimdMatchesScalarKernels) {
    const DType t = GetParam();
    std::mt19937 rng(99 + static_cast<unsigned>(t));
    for (const Shape& s : shapes_for(t)) {
        const Problem p = make_problem(t, s, rng);
        const Reference ref = reference(p);
        const std::vector<float> scalar = run(p, Isa::Scalar, s.rows);
        for (Isa isa : isas_to_test()) {
            if (isa == Isa::Scalar) continue;
            SCOPED_TRACE(describe(t, s, isa));
            EXPECT_EQ(quant_kernel_isa_for(isa, t), isa)
                << "the SIMD path fell back; this test would compare scalar with scalar";
            ASSERT_EQ(scalar_mismatch(p, ref, scalar, run(p, isa, s.rows)), "");
        }
    }
}

// The AVX-512 VNNI kernels are the AVX2 kernels' code with other integer multiply-adds: the
// same exact integer sums, then the same float code, so the results must be bit-identical.
// Only an AVX-512 VNNI CPU runs this; elsewhere scripts/test-simd.sh avx512 checks the same in
// an emulator.
TEST_P(QuantMatmulTest, Avx512VnniBitIdenticalToAvx2) {
    if (!cpu_supports(Isa::Avx512Vnni)) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
    const DType t = GetParam();
    std::mt19937 rng(17 + static_cast<unsigned>(t));
    for (const Shape& s : shapes_for(t)) {
        const Problem p = make_problem(t, s, rng);
        SCOPED_TRACE(describe(t, s, Isa::Avx512Vnni));
        ASSERT_EQ(bit_mismatch(p, run(p, Isa::Avx2, s.rows), run(p, Isa::Avx512Vnni, s.rows)), "");
    }
}

// Rows further apart than their bytes (w_row_bytes > row_bytes) must give the same results:
// decode cannot then read the rows as one run of blocks.
TEST_P(QuantMatmulTest, PaddedRowsMatchPackedRows) {
    const DType t = GetParam();
    std::mt19937 rng(5 + static_cast<unsigned>(t));
    const int64_t block = dtype_traits(t).block_size;
    for (const Shape& s : {Shape{block < 256 ? 576 : 1536, 9, 2, 1}, Shape{896, 6, 1, 3}}) {
        if (s.k % block != 0) continue;
        const Problem p = make_problem(t, s, rng);
        const size_t padded = p.w_rb + 64;
        std::vector<uint8_t> w(padded * static_cast<size_t>(s.rows), 0xff);
        for (int64_t r = 0; r < s.rows; ++r)
            std::memcpy(w.data() + r * padded, p.w.data() + r * p.w_rb, p.w_rb);
        const Reference ref = reference(p);
        for (Isa isa : isas_to_test()) {
            SCOPED_TRACE(describe(t, s, isa));
            const std::vector<float> packed = run(p, isa, s.rows);
            std::vector<float> y(static_cast<size_t>(s.rows * s.n_tokens), std::nanf(""));
            quant_matmul_isa(isa, t, s.k, w.data(), padded, s.row_begin, s.rows, p.act.data(),
                             p.act_rb, s.n_tokens, y.data(), s.rows);
            for (int64_t tok = 0; tok < s.n_tokens; ++tok) {
                for (int64_t r = s.row_begin; r < s.rows; ++r) {
                    const size_t i = static_cast<size_t>(tok * s.rows + r);
                    // The same integer sums; the float additions may differ in order.
                    ASSERT_NEAR(y[i], packed[i],
                                0.25 * rounding_tol(ref.exact_mag[i], float_terms(p)))
                        << "r=" << r << " tok=" << tok;
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, QuantMatmulTest, ::testing::ValuesIn(kWeightTypes),
                         [](const ::testing::TestParamInfo<DType>& param) {
                             return std::string(dtype_name(param.param));
                         });

// The tolerances above must be tight enough to see a kernel that pairs weights with the wrong
// activations: swap the two nibbles of every Q4_0 byte (elements j and j+16 trade places),
// and the result must fall outside the tolerance of the true reference.
TEST(QuantMatmulTolerance, DetectsSwappedNibbles) {
    Reference ref;
    const Problem p = swapped_nibbles_problem(&ref);
    for (Isa isa : isas_to_test()) {
        SCOPED_TRACE(isa_name(isa));
        const std::vector<float> y = run(p, isa, p.shape.rows);
        EXPECT_EQ(count_outside_tolerance(p, ref, y), y.size());
    }
}

// Real quantizer output (not just random bytes) through the default dispatch.
TEST(QuantMatmul, QuantizedFromFloatsMatchesFloatDot) {
    std::mt19937 rng(3);
    const int64_t rows = 6;
    for (DType t : kWeightTypes) {
        SCOPED_TRACE(dtype_name(t));
        const FromFloats m = matmul_from_floats(t, 512, rows, 4, rng);
        for (size_t i = 0; i < m.y.size(); ++i)
            EXPECT_NEAR(m.y[i], m.dot[i], 0.01 * m.mag[i])
                << "r=" << i % rows << " tok=" << i / rows;
    }
}

#if defined(__x86_64__)
// The AVX2 activation quantizer must reproduce the reference bit for bit, including the
// round-half-away-from-zero ties, all-zero blocks and blocks whose largest value is negative.
TEST(QuantMatmul, Avx2ActivationQuantizerIsBitExact) {
    if (!cpu_supports(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> value(-3.0f, 3.0f);
    const int64_t k = 32 * 64;
    std::vector<float> x(k);
    for (auto& v : x) v = value(rng);
    for (int j = 0; j < 32; ++j) x[j] = 0.0f;                        // zero block
    for (int j = 32; j < 64; ++j) x[j] = 0.5f * (j - 48);            // mixed magnitudes
    for (int j = 64; j < 96; ++j) x[j] = -127.0f + 2.5f * (j - 64);  // d = 1: exact .5 ties
    x[100] = -50.0f;                                                 // negative extreme
    std::vector<uint8_t> ref(row_bytes(DType::Q8_0, k)), simd(ref.size());
    quantize_row_q8_0(x.data(), ref.data(), k);
    detail::quantize_row_q8_0_avx2(x.data(), simd.data(), k);
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(ref[i], simd[i]) << "byte " << i;
}
#endif

TEST(CpuFeatures, NamesRoundTripAndBestIsSupported) {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::NeonDotprod}) {
        Isa parsed = Isa::Scalar;
        ASSERT_TRUE(parse_isa(isa_name(isa), parsed));
        EXPECT_EQ(parsed, isa);
    }
    Isa unused;
    EXPECT_FALSE(parse_isa("sse9", unused));
    EXPECT_TRUE(cpu_supports(Isa::Scalar));
    EXPECT_TRUE(cpu_supports(best_isa()));
    EXPECT_STRNE(quant_kernel_isa(), "");
#if defined(__x86_64__)
    // x86 levels include the ones below them.
    if (cpu_supports(Isa::Avx512Vnni)) {
        EXPECT_TRUE(cpu_supports(Isa::Avx2));
    }
#endif
}

TEST(QuantMatmul, ActivationTypes) {
    EXPECT_EQ(activation_type(DType::Q4_0), DType::Q8_0);
    EXPECT_EQ(activation_type(DType::Q8_0), DType::Q8_0);
    EXPECT_EQ(activation_type(DType::Q5_K), DType::Q8_K);
    EXPECT_EQ(activation_type(DType::BF16), DType::F32);
}

}  // namespace
}  // namespace mllm::cpu

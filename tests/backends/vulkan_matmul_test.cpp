// The Vulkan matmul and embedding lookup for every weight type, against core/quant's reference
// dequantization (double dot products): odd shapes, offsets and strides, a bias, buffers split
// over several bindings (under an artificially small binding limit), out-of-range ids.
//
// Weights are random bytes with sane fp16 scale fields (some of them subnormal), so every bit of
// every block layout matters: a wrong nibble order, bit position or field offset fails.
//
// Device tests run on whatever device MLLM_VK_DEVICE selects (lavapipe on CI). Without a Vulkan
// device they are skipped with the reason, except when CI=true: there a missing device fails.
#ifdef MLLM_HAVE_VULKAN

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "backends/vulkan/ops/vk_embed.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_memory.h"
#include "backends/vulkan/vk_sequence.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quant/quant.h"
#include "tests/support/matmul_reference.h"
#include "tests/support/vulkan_fixture.h"

namespace mllm::vk {
namespace {

constexpr DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                            DType::Q4_1, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// One tiling for every test, so each type compiles one pipeline (LLVM takes about half a second
// per pipeline on lavapipe): the default workgroup (several subgroups), 2 rows and 4 tokens per
// workgroup, ragged against the odd m and n of the tests.
const MatMulConfig kTiles{0, 0, 4};

using test::activation;
using test::expect_close;
using test::is_float;
using test::random_floats;
using test::random_weights;
using test::Reference;
using test::reference_matmul;
using test::rounded_to_q8_0;
using test::tolerance;

size_t w_bytes(DType t, int64_t rows, int64_t k) {
    return row_bytes(t, k) * static_cast<size_t>(rows);
}

// x as the kernel multiplies it: rounded to Q8_0 blocks by the kernels that quantize their
// input (matmul_quantizes_input), else as it is.
std::vector<float> kernel_input(DType t, bool repacked, const std::vector<float>& x, int64_t k) {
    return matmul_quantizes_input(t, repacked) ? rounded_to_q8_0(x, k) : x;
}

// x [n, k] spread into a buffer with an offset and a padded stride, the rest NaN (never read).
std::vector<float> spread(const std::vector<float>& x, int64_t k, int64_t n, int64_t offset,
                          int64_t stride) {
    std::vector<float> out(static_cast<size_t>(offset + n * stride), std::nanf(""));
    for (int64_t t = 0; t < n; ++t)
        std::copy_n(x.begin() + t * k, k, out.begin() + offset + t * stride);
    return out;
}

// The arguments of y = x W^T over whole contiguous buffers; callers then set offsets, strides,
// a bias or more outputs.
MatMulArgs whole_args(DType t, int64_t m, int64_t k, int64_t n, const Allocation& w,
                      const Allocation& x, const Allocation& y) {
    return matmul_args(t, m, k, n, w.range(), x.range(), y.range());
}

class VulkanMatMul : public test::VulkanContextTest {
  public:
    // y [n, m] for contiguous x and y.
    std::vector<float> matmul(DType t, const std::vector<uint8_t>& w, const std::vector<float>& x,
                              int64_t m, int64_t k, int64_t n, MatMulConfig config = {}) {
        Allocation wa = upload(w);
        Allocation xa = upload(x);
        Allocation ya = ctx().memory().allocate(static_cast<size_t>(m * n) * sizeof(float));
        const MatMulArgs args = whole_args(t, m, k, n, wa, xa, ya);
        run([&](Sequence& seq) { record_matmul(ctx(), seq, args, config); });
        return download(ya, static_cast<size_t>(m * n));
    }
};
using VulkanEmbed = VulkanMatMul;

std::vector<int64_t> test_ks(DType t) {
    if (is_float(t)) return {8, 40, 37};  // 37: a partial chunk at the end of each row
    const int64_t b = dtype_traits(t).block_size;
    return {b, 3 * b};
}

// ---------------------------------------------------------------------------------------------
// Matmul

TEST_F(VulkanMatMul, SupportsEveryWeightType) {
    for (DType t : kTypes) {
        EXPECT_TRUE(matmul_supports(t)) << dtype_name(t);
        EXPECT_TRUE(embed_supports(t)) << dtype_name(t);
    }
    EXPECT_FALSE(matmul_supports(DType::Q8_K));
    EXPECT_FALSE(embed_supports(DType::I32));
}

// Every k x m x n shape for weights of type t against the reference, dispatched with
// `config`; false after the first failing shape.
bool shapes_match(VulkanMatMul& test, DType t, const std::vector<int64_t>& ks,
                  const std::vector<int64_t>& ms, const std::vector<int64_t>& ns,
                  const MatMulConfig& config, std::mt19937& rng) {
    for (int64_t k : ks)
        for (int64_t m : ms)
            for (int64_t n : ns) {
                SCOPED_TRACE(str_cat(dtype_name(t), " m=", m, " k=", k, " n=", n));
                const auto w = random_weights(t, m, k, rng);
                const auto x = random_floats(static_cast<size_t>(n * k), rng);
                expect_close(test.matmul(t, w, x, m, k, n, config),
                             reference_matmul(t, w, x, m, k, n), m);
                if (::testing::Test::HasFailure()) return false;
            }
    return true;
}

TEST_F(VulkanMatMul, EveryTypeMatchesTheReferenceOnOddShapes) {
    std::mt19937 rng(1234);
    for (DType t : kTypes)
        if (!shapes_match(*this, t, test_ks(t), {1, 5, 67}, {1, 3, 7}, kTiles, rng)) return;
}

TEST_F(VulkanMatMul, EveryInputAndWeightBindingMatchesTheReference) {
    // The row-per-invocation kernels read the input from a texel buffer (with texel weights), a
    // uniform buffer or a storage buffer, and the weights from a texel or a storage buffer, as
    // the device allows: the paths other than the device's default, forced.
    std::mt19937 rng(5);
    for (int uniform_input : {1, 0}) {
        for (int texel_weights : {-1, 0}) {
            MatMulConfig config = kTiles;
            config.row_per_invocation = 1;
            config.uniform_input = uniform_input;
            config.texel_weights = texel_weights;
            SCOPED_TRACE(str_cat(uniform_input == 0 ? "no uniform input" : "uniform input",
                                 texel_weights == 0 ? ", storage-buffer weights" : ""));
            for (DType t : kTypes)
                if (!shapes_match(*this, t, {test_ks(t).back()}, {5, 67}, {1, 7}, config, rng))
                    return;
        }
    }
}

TEST_F(VulkanMatMul, GpuLayoutMatchesTheReference) {
    // The threads-share-a-row layout GPUs get (CPU devices default to a row per invocation), so
    // it stays tested on lavapipe.
    std::mt19937 rng(99);
    MatMulConfig gpu = kTiles;
    gpu.row_per_invocation = 0;
    for (DType t : kTypes)
        if (!shapes_match(*this, t, {test_ks(t).back()}, {5, 67}, {1, 7}, gpu, rng)) return;
}

TEST_F(VulkanMatMul, TiledGemmMatchesTheReference) {
    // The shared-memory GEMM GPUs use for long prefills (forced here: CPU devices never pick it):
    // ragged row and token tiles, one k step and a partial last one (576 = 4.5 steps of 128).
    if (!matmul_tiles(ctx().props(), 128)) GTEST_SKIP() << "the device cannot run the tiled GEMM";
    std::mt19937 rng(123);
    MatMulConfig tiled;
    tiled.tiled = 1;
    for (DType t : kTypes) {
        const std::vector<int64_t> ks = is_float(t) ? std::vector<int64_t>{8, 136}
                                        : dtype_traits(t).block_size == 256
                                            ? std::vector<int64_t>{256, 512}
                                            : std::vector<int64_t>{32, 576};
        if (!shapes_match(*this, t, ks, {1, 67}, {5, 40}, tiled, rng)) return;
    }
}

TEST_F(VulkanMatMul, IntegerDotProductsMatchTheReference) {
    // Activations quantized to packed Q8_0 blocks by round_activations, then Q8_0 and Q4_0
    // weights multiplied with integer dot products (the GPUs' kernel, forced on any device with
    // VK_KHR_shader_integer_dot_product): the reference multiplies the same rounded activations.
    if (!ctx().props().int8_dot) GTEST_SKIP() << "the device has no integer dot product";
    std::mt19937 rng(77);
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
        for (int64_t k : {32, 96, 576}) {
            for (int64_t m : {1, 67}) {
                for (int64_t n : {1, 3, 7}) {
                    SCOPED_TRACE(str_cat(dtype_name(t), " m=", m, " k=", k, " n=", n));
                    const auto w = random_weights(t, m, k, rng);
                    const auto x = random_floats(static_cast<size_t>(n * k), rng);
                    const std::vector<float> rounded = rounded_to_q8_0(x, k);
                    Allocation wa = upload(w);
                    Allocation xa = upload(x);
                    Allocation qa =
                        ctx().memory().allocate(static_cast<size_t>(n * q8_0_packed_words(k)) * 4);
                    Allocation ya = ctx().memory().allocate(static_cast<size_t>(m * n) * 4);
                    run([&](Sequence& seq) {
                        RoundActivationsArgs r;
                        r.format = DType::Q8_0;
                        r.packed = true;
                        r.rows = n;
                        r.cols = k;
                        r.x = xa.range();
                        r.y = qa.range();
                        record_round_activations(ctx(), seq, r);
                        seq.barrier();
                        MatMulArgs a = whole_args(t, m, k, n, wa, qa, ya);
                        a.x_packed = true;
                        record_matmul(ctx(), seq, a, kTiles);
                    });
                    expect_close(download(ya, static_cast<size_t>(m * n)),
                                 reference_matmul(t, w, rounded, m, k, n), m);
                    if (HasFailure()) return;
                }
            }
        }
    }
}

TEST_F(VulkanMatMul, RepackedWeightsMatchTheReference) {
    // Q4_0 and Q8_0 in the layout CPU devices repack them into: ragged m against the
    // workgroup's rows, x and y at offsets with padded strides (unaligned for vec4 loads), a
    // bias, and bindings split under a small limit.
    std::mt19937 rng(21);
    for (DType t : {DType::Q4_0, DType::Q8_0}) {
        for (int64_t k : {32, 96, 576}) {
            for (int64_t m : {1, 67, 300}) {
                for (int64_t n : {1, 3, 7}) {
                    for (int path = 0; path < 6; ++path) {
                        // Paths 0-2 whole, 3-5 split; each with the input through a uniform
                        // buffer, then the default bindings (on CPU devices, both through
                        // texel buffers), then both through storage buffers.
                        const bool split = path >= 3;
                        const int binding = path % 3;
                        if ((split || binding != 1) && (m != 67 || n != 3)) continue;
                        SCOPED_TRACE(str_cat(dtype_name(t), " m=", m, " k=", k, " n=", n,
                                             split ? " split" : "", " bindings ", binding));
                        const auto w = random_weights(t, m, k, rng);
                        const auto x = random_floats(static_cast<size_t>(n * k), rng);
                        const auto bias = random_floats(static_cast<size_t>(m), rng);
                        std::vector<uint8_t> packed(repacked_bytes(t, m, k));
                        repack_for_matmul(t, w.data(), m, k, packed.data());
                        const int64_t x_off = n == 3 ? 1 : 0, x_stride = n == 3 ? k + 3 : k;
                        const int64_t y_stride = m + 1;
                        Allocation wa = upload(packed);
                        Allocation xa = upload(spread(x, k, n, x_off, x_stride));
                        Allocation ba = upload(bias);
                        Allocation ya =
                            ctx().memory().allocate(static_cast<size_t>(n * y_stride) * 4);
                        MatMulArgs args = whole_args(t, m, k, n, wa, xa, ya);
                        args.repacked = true;
                        args.x_offset = x_off;
                        args.x_stride = x_stride;
                        args.y_stride = y_stride;
                        args.bias = ba.range();
                        MatMulConfig config = kTiles;
                        config.uniform_input = binding == 0 ? 1 : 0;
                        config.texel_weights = binding == 2 ? 0 : -1;
                        if (split)
                            config.max_binding =
                                slack() + 4 * static_cast<uint64_t>(x_stride * n) + 64;
                        const size_t dispatches =
                            run([&](Sequence& seq) { record_matmul(ctx(), seq, args, config); });
                        if (split) {
                            EXPECT_GT(dispatches, 1u) << "the weights were not split";
                        }
                        const auto ys = download(ya, static_cast<size_t>(n * y_stride));
                        std::vector<float> y;
                        for (int64_t tok = 0; tok < n; ++tok)
                            y.insert(y.end(), ys.begin() + tok * y_stride,
                                     ys.begin() + tok * y_stride + m);
                        expect_close(
                            y, reference_matmul(t, w, kernel_input(t, true, x, k), m, k, n, bias),
                            m);
                        if (HasFailure()) return;
                    }
                }
            }
        }
    }
}

TEST_F(VulkanMatMul, GroupsWriteEachWeightsRowsToItsOwnOutput) {
    // Queries, keys and values as one matmul over their concatenated rows: each part's rows land
    // in its own output (own offset and stride in one buffer), with the concatenated bias. The
    // repacked kernel (Q4_0, Q8_0 on CPU devices), the row-per-invocation and the GPU layouts
    // and the tiled GEMM; 1 token (the repacked Q4_0 kernel's 8 rows per invocation), 7, and 40
    // under a binding limit that makes them several dispatches of tokens.
    std::mt19937 rng(31);
    // 63 rows: a Q4_0 pair of the repacked layout spans the first two outputs.
    const int64_t parts[] = {63, 25, 13};
    const int64_t m = 63 + 25 + 13;
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K}) {
        for (int layout : {1, 0, 2}) {  // 2: the tiled GEMM
            for (int64_t n : {1, 7, 40}) {
                const bool repacked = matmul_repacks(ctx().props(), t) && layout == 1;
                if (layout == 2 && !matmul_tiles(ctx().props(), 256)) continue;
                const int64_t k = 256;  // x (1 KiB a token) outgrows the small binding before y
                SCOPED_TRACE(str_cat(dtype_name(t),
                                     layout == 1   ? " row per invocation"
                                     : layout == 0 ? " gpu"
                                                   : " tiled",
                                     " n=", n));
                const auto w = random_weights(t, m, k, rng);
                const auto x = random_floats(static_cast<size_t>(n * k), rng);
                const auto bias = random_floats(static_cast<size_t>(m), rng);
                std::vector<uint8_t> packed;
                if (repacked) {
                    packed.resize(repacked_bytes(t, m, k));
                    repack_for_matmul(t, w.data(), m, k, packed.data());
                }
                // Outputs at offsets 5, then after the first, ... with strides one wider.
                const int64_t offsets[] = {5, 5 + n * (parts[0] + 1) + 3,
                                           5 + n * (parts[0] + 1) + 3 + n * (parts[1] + 2) + 1};
                const int64_t strides[] = {parts[0] + 1, parts[1] + 2, parts[2] + 3};
                const int64_t y_floats = offsets[2] + n * strides[2];
                Allocation wa = upload(repacked ? packed : w);
                Allocation xa = upload(x);
                Allocation ba = upload(bias);
                Allocation ya = upload(std::vector<float>(static_cast<size_t>(y_floats), -7.0f));
                MatMulArgs args = whole_args(t, m, k, n, wa, xa, ya);
                args.repacked = repacked;
                args.y_offset = offsets[0];
                args.y_stride = strides[0];
                args.more_outputs = {{parts[0], offsets[1], strides[1]},
                                     {parts[0] + parts[1], offsets[2], strides[2]}};
                args.bias = ba.range();
                MatMulConfig config = kTiles;
                config.row_per_invocation = layout == 1 ? 1 : 0;
                config.tiled = layout == 2 ? 1 : 0;
                // Room for y and the weights whole but only some tokens' input per binding.
                if (n == 40)
                    config.max_binding =
                        std::max<uint64_t>(4 * y_floats, repacked ? packed.size() : w.size()) + 256;
                const size_t dispatches =
                    run([&](Sequence& seq) { record_matmul(ctx(), seq, args, config); });
                if (n == 40) {
                    EXPECT_GT(dispatches, 1u) << "the tokens were not split";
                }
                const auto ys = download(ya, static_cast<size_t>(y_floats));
                // Gather the three outputs back into [n, m] and check nothing else was written.
                std::vector<float> y(static_cast<size_t>(n * m));
                std::vector<bool> written(ys.size(), false);
                for (int64_t tok = 0; tok < n; ++tok)
                    for (int64_t r = 0, part = 0, first = 0; r < m; ++r) {
                        if (r - first == parts[part]) first += parts[part++];
                        const int64_t at = offsets[part] + tok * strides[part] + (r - first);
                        y[tok * m + r] = ys[at];
                        written[at] = true;
                    }
                for (size_t i = 0; i < ys.size(); ++i) {
                    if (!written[i]) {
                        ASSERT_EQ(ys[i], -7.0f) << "y[" << i << "] overwritten";
                    }
                }
                expect_close(
                    y, reference_matmul(t, w, kernel_input(t, repacked, x, k), m, k, n, bias), m);
                if (HasFailure()) return;
            }
        }
    }
}

TEST_F(VulkanMatMul, RejectsGroupsThatNeedSeveralRowDispatches) {
    std::mt19937 rng(3);
    const int64_t m = 40, k = 32;
    const auto w = random_weights(DType::Q8_0, m, k, rng);
    Allocation wa = upload(w);
    Allocation xa = upload(random_floats(k, rng));
    Allocation ya = ctx().memory().allocate(4 * m);
    MatMulArgs args = whole_args(DType::Q8_0, m, k, 1, wa, xa, ya);
    args.y_stride = 20;
    args.more_outputs = {{20, 20, 20}};
    MatMulConfig small = kTiles;
    small.row_per_invocation = 0;
    small.max_binding = slack() + row_bytes(DType::Q8_0, k) * 8;  // 8 rows per binding
    EXPECT_THROW(run([&](Sequence& seq) { record_matmul(ctx(), seq, args, small); }), Error);
    args.more_outputs = {{0, 20, 20}};  // malformed: the first output would be empty
    EXPECT_THROW(run([&](Sequence& seq) { record_matmul(ctx(), seq, args); }), Error);
}

TEST_F(VulkanMatMul, HalfWeightsRoundActivationsLikeTheCpu) {
    // An identity matrix makes y exactly the rounded activations: ties to even in the normal
    // and the subnormal range, underflow to zero, the largest finite half.
    const std::vector<float> x = {
        1.0f + 0x1p-11f,  1.0f + 0x3p-11f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f,  0x3p-25f, 0x1p-25f,
        0x1.0002p-25f,    -0x5p-25f,       65519.0f,       -1.0f / 3.0f,    0.1f,     0x1p-30f,
        1.0f + 0x1.8p-9f, 3.14159265f,     -2.71828183f,   0x1.fffffep-15f,
    };
    const int64_t k = static_cast<int64_t>(x.size());
    for (DType t : {DType::F16, DType::BF16}) {
        SCOPED_TRACE(std::string(dtype_name(t)));
        std::vector<uint8_t> w(row_bytes(t, k) * static_cast<size_t>(k), 0);
        const uint16_t one = t == DType::F16 ? fp32_to_fp16(1.0f) : fp32_to_bf16(1.0f);
        for (int64_t r = 0; r < k; ++r) std::memcpy(w.data() + 2 * (r * k + r), &one, 2);
        const auto y = matmul(t, w, x, k, k, 1);  // the device's default GEMV tiling
        for (int64_t i = 0; i < k; ++i)
            EXPECT_EQ(y[i], activation(t, x[i])) << "x[" << i << "] = " << x[i];
    }
}

TEST_F(VulkanMatMul, BiasOffsetsAndStrides) {
    // The weights at a 2-mod-4 byte offset after other bytes, x and y inside larger buffers with
    // offsets and padded strides, a bias at an offset; nothing outside y's rows is written.
    // Both the plain kernels and the tiled GEMM (float rows of whole chunks for the latter).
    std::mt19937 rng(7);
    const int64_t m = 5, n = 3;
    MatMulConfig tiled;
    tiled.tiled = 1;
    for (DType t : kTypes) {
        for (const MatMulConfig& config : {kTiles, tiled}) {
            for (bool with_bias : {false, true}) {
                SCOPED_TRACE(str_cat(dtype_name(t), with_bias ? " with bias" : "",
                                     config.tiled == 1 ? " tiled" : ""));
                const int64_t k =
                    is_float(t) ? (config.tiled == 1 ? 40 : 37) : dtype_traits(t).block_size;
                const auto w = random_weights(t, m, k, rng);
                const int64_t w_offset = 6;
                std::vector<uint8_t> packed(static_cast<size_t>(w_offset) + w.size() + 8, 0xee);
                std::copy(w.begin(), w.end(), packed.begin() + w_offset);
                const auto x = random_floats(static_cast<size_t>(n * k), rng);
                const int64_t x_off = 5, x_stride = k + 3, y_off = 7, y_stride = m + 2, b_off = 3;
                const auto bias = random_floats(static_cast<size_t>(m), rng);
                std::vector<float> bias_buf(static_cast<size_t>(b_off + m + 2), 1e30f);
                std::copy(bias.begin(), bias.end(), bias_buf.begin() + b_off);
                const std::vector<float> ys(static_cast<size_t>(y_off + n * y_stride + 4), -3.0f);

                Allocation wa = upload(packed);
                Allocation xa = upload(spread(x, k, n, x_off, x_stride));
                Allocation ya = upload(ys);
                Allocation ba = upload(bias_buf);
                MatMulArgs args = whole_args(t, m, k, n, wa, xa, ya);
                args.w_offset = w_offset;
                args.x_offset = x_off;
                args.x_stride = x_stride;
                args.y_offset = y_off;
                args.y_stride = y_stride;
                if (with_bias) {
                    args.bias = ba.range();
                    args.bias_offset = b_off;
                }
                run([&](Sequence& seq) { record_matmul(ctx(), seq, args, config); });
                const auto y = download(ya, ys.size());
                const Reference ref =
                    reference_matmul(t, w, x, m, k, n, with_bias ? bias : std::vector<float>{});
                for (int64_t i = 0; i < static_cast<int64_t>(ys.size()); ++i) {
                    const int64_t rel = i - y_off;
                    const bool inside = rel >= 0 && rel % y_stride < m && rel / y_stride < n;
                    if (!inside) {
                        EXPECT_EQ(y[i], -3.0f) << "wrote outside the output at " << i;
                        continue;
                    }
                    const size_t r = static_cast<size_t>((rel / y_stride) * m + rel % y_stride);
                    EXPECT_NEAR(y[i], ref.y[r], tolerance(ref.magnitude[r])) << "at " << i;
                }
            }
        }
    }
}

TEST_F(VulkanMatMul, SplitsBindingsBeyondTheLimit) {
    // Under a binding limit of a few rows, the weights are bound in parts (each aligned down to
    // the device's offset alignment, the rest passed as an offset), as are x, y and the bias.
    std::mt19937 rng(11);
    const int64_t m = 37, n = 3;
    for (DType t : {DType::F32, DType::F16, DType::Q4_0, DType::Q5_0, DType::Q6_K}) {
        for (int tiled : {0, 1}) {  // the plain kernels and the tiled GEMM
            SCOPED_TRACE(str_cat(dtype_name(t), tiled ? " tiled" : ""));
            const int64_t k = is_float(t) ? 104 : dtype_traits(t).block_size;
            // One input row just fits: a few weight rows per binding.
            const uint64_t limit = slack() + static_cast<uint64_t>(4 * k + 8);
            ASSERT_LT(limit, w_bytes(t, m, k)) << "the weights would fit one binding";
            const auto w = random_weights(t, m, k, rng);
            const int64_t w_offset = 2;
            std::vector<uint8_t> packed(static_cast<size_t>(w_offset) + w.size() + 4, 0);
            std::copy(w.begin(), w.end(), packed.begin() + w_offset);
            const auto x = random_floats(static_cast<size_t>(n * k), rng);
            const auto bias = random_floats(static_cast<size_t>(m), rng);
            const int64_t y_stride = m + 1;
            Allocation wa = upload(packed);
            Allocation xa = upload(x);
            Allocation ba = upload(bias);
            Allocation ya = ctx().memory().allocate(static_cast<size_t>(n * y_stride) * 4);
            MatMulArgs args = whole_args(t, m, k, n, wa, xa, ya);
            args.w_offset = w_offset;
            args.y_stride = y_stride;
            args.bias = ba.range();
            MatMulConfig config = kTiles;
            config.max_binding = limit;
            config.tiled = tiled;
            const size_t dispatches =
                run([&](Sequence& seq) { record_matmul(ctx(), seq, args, config); });
            EXPECT_GE(dispatches, (w_bytes(t, m, k) + limit - 1) / limit)
                << "the weights were not split";
            const auto ys = download(ya, static_cast<size_t>(n * y_stride));
            std::vector<float> y;
            for (int64_t tok = 0; tok < n; ++tok)
                y.insert(y.end(), ys.begin() + tok * y_stride, ys.begin() + tok * y_stride + m);
            expect_close(y, reference_matmul(t, w, x, m, k, n, bias), m);
        }
    }
}

TEST_F(VulkanMatMul, RejectsWhatItCannotRun) {
    Allocation a = ctx().memory().allocate(1 << 16);
    MatMulArgs args;
    args.m = 4;
    args.k = 512;
    args.n = 1;
    args.w = args.x = args.y = a.range();
    Sequence seq(ctx().device());
    seq.begin();
    args.weight_type = DType::Q8_K;  // an activation format, never a weight
    EXPECT_FALSE(matmul_supports(DType::Q8_K));
    EXPECT_THROW(record_matmul(ctx(), seq, args), Error);
    args.weight_type = DType::Q8_0;
    args.k = 48;  // not a whole number of blocks
    EXPECT_THROW(record_matmul(ctx(), seq, args), Error);
    args.weight_type = DType::Q4_K;
    args.k = 128;  // not a whole super-block
    EXPECT_THROW(record_matmul(ctx(), seq, args), Error);
    args.k = 512;
    args.w_offset = 3;  // blocks are 2-byte aligned
    EXPECT_THROW(record_matmul(ctx(), seq, args), Error);
    args.w_offset = 0;
    args.m = 1 << 20;  // more weight rows than the binding holds
    EXPECT_THROW(record_matmul(ctx(), seq, args), Error);
    args.m = 4;
    MatMulConfig tiny;
    tiny.max_binding = 256;  // not even one row fits
    EXPECT_THROW(record_matmul(ctx(), seq, args, tiny), Error);
    seq.end();
}

// ---------------------------------------------------------------------------------------------
// Embedding lookup

struct EmbedCase {
    DType type;
    int64_t cols, table_rows;
    std::vector<int32_t> ids;
    uint64_t max_binding;
};

// Looks the ids up into rows of a padded output and checks every value: the dequantized row,
// bit for bit, zeros for ids outside the table, untouched padding. Returns the dispatch count.
size_t check_embed(Context& ctx, const EmbedCase& c, std::mt19937& rng);

TEST_F(VulkanEmbed, EveryTypeGivesTheReferenceRowsBitForBit) {
    std::mt19937 rng(3);
    for (DType t : kTypes) {
        for (int64_t cols : test_ks(t)) {
            SCOPED_TRACE(str_cat(dtype_name(t), " cols=", cols));
            // Repeated ids, the first and last rows, and ids outside the table both ways.
            check_embed(ctx(), {t, cols, 13, {4, 0, 12, 4, -1, 13, 1 << 30, 7, 2}, 0}, rng);
            if (HasFailure()) return;
        }
    }
}

TEST_F(VulkanEmbed, SplitsTablesBeyondTheLimit) {
    std::mt19937 rng(5);
    for (DType t : {DType::F16, DType::Q8_0, DType::Q4_1, DType::Q4_K, DType::Q5_K}) {
        SCOPED_TRACE(std::string(dtype_name(t)));
        const int64_t cols = is_float(t) ? 300 : dtype_traits(t).block_size;
        const int64_t rb = static_cast<int64_t>(row_bytes(t, cols));
        // Room for about 4 table rows (and at least one output row) per binding.
        const uint64_t limit = slack() + static_cast<uint64_t>(std::max(4 * rb, 4 * cols));
        const size_t dispatches =
            check_embed(ctx(), {t, cols, 31, {30, 0, 17, -5, 31, 3, 4, 5, 29, 16}, limit}, rng);
        EXPECT_GE(dispatches, (w_bytes(t, 31, cols) + limit - 1) / limit)
            << "the table was not split";
    }
}

TEST_F(VulkanEmbed, RejectsWhatItCannotRun) {
    Allocation a = ctx().memory().allocate(1 << 16);
    EmbedArgs args;
    args.cols = 512;
    args.rows = 2;
    args.table_rows = 4;
    args.table = args.ids = args.y = a.range();
    Sequence seq(ctx().device());
    seq.begin();
    args.table_type = DType::Q8_K;
    EXPECT_THROW(record_embed(ctx(), seq, args), Error);
    args.table_type = DType::Q6_K;
    args.cols = 100;  // not a whole super-block
    EXPECT_THROW(record_embed(ctx(), seq, args), Error);
    args.cols = 512;
    args.table_rows = 1000;  // more rows than the binding holds
    EXPECT_THROW(record_embed(ctx(), seq, args), Error);
    seq.end();
}

size_t check_embed(Context& ctx, const EmbedCase& c, std::mt19937& rng) {
    const auto table = random_weights(c.type, c.table_rows, c.cols, rng);
    const int64_t tokens = static_cast<int64_t>(c.ids.size());
    const int64_t table_offset = 10, ids_offset = 3, y_offset = 5, y_stride = c.cols + 3;
    std::vector<uint8_t> packed(static_cast<size_t>(table_offset) + table.size() + 4, 0x5a);
    std::copy(table.begin(), table.end(), packed.begin() + table_offset);
    std::vector<int32_t> ids(static_cast<size_t>(ids_offset), 0);
    ids.insert(ids.end(), c.ids.begin(), c.ids.end());
    const std::vector<float> ys(static_cast<size_t>(y_offset + tokens * y_stride + 2), -7.0f);

    auto upload = [&](const auto& v) {
        const size_t bytes = v.size() * sizeof(v[0]);
        Allocation a = ctx.memory().allocate(bytes);
        ctx.write(a, 0, v.data(), bytes);
        return a;
    };
    Allocation ta = upload(packed);
    Allocation ia = upload(ids);
    Allocation ya = upload(ys);
    EmbedArgs args;
    args.table_type = c.type;
    args.cols = c.cols;
    args.rows = tokens;
    args.table = ta.range();
    args.table_offset = table_offset;
    args.table_rows = c.table_rows;
    args.ids = ia.range();
    args.ids_offset = ids_offset;
    args.y = ya.range();
    args.y_offset = y_offset;
    args.y_stride = y_stride;
    EmbedConfig config;
    config.max_binding = c.max_binding;

    Sequence seq(ctx.device());
    seq.begin();
    record_embed(ctx, seq, args, config);
    seq.end();
    seq.run();
    std::vector<float> y(ys.size());
    ctx.read(ya, 0, y.data(), y.size() * sizeof(float));

    const size_t rb = row_bytes(c.type, c.cols);
    std::vector<float> row(static_cast<size_t>(c.cols));
    int bad = 0;
    for (int64_t t = 0; t < tokens; ++t) {
        const int32_t id = c.ids[static_cast<size_t>(t)];
        if (id >= 0 && id < c.table_rows)
            dequantize_row(c.type, table.data() + static_cast<size_t>(id) * rb, row.data(), c.cols);
        else
            std::fill(row.begin(), row.end(), 0.0f);
        for (int64_t i = 0; i < c.cols && bad < 5; ++i) {
            const float got = y[static_cast<size_t>(y_offset + t * y_stride + i)];
            if (std::memcmp(&got, &row[i], 4) != 0) {
                ADD_FAILURE() << "token " << t << " (id " << id << ") element " << i << ": " << got
                              << ", reference " << row[i];
                ++bad;
            }
        }
    }
    for (size_t i = 0; i < y.size(); ++i) {
        const int64_t rel = static_cast<int64_t>(i) - y_offset;
        const bool inside = rel >= 0 && rel / y_stride < tokens && rel % y_stride < c.cols;
        if (!inside && y[i] != -7.0f) {
            ADD_FAILURE() << "wrote outside the output at " << i;
            break;
        }
    }
    return seq.dispatches();
}

}  // namespace
}  // namespace mllm::vk

#endif  // MLLM_HAVE_VULKAN

// The Vulkan op families against the CPU reference (core/quant dequantize_row with double dot
// products; the CPU backend's RMSNorm and argmax), the two attention kernels against each other,
// and a Sequence of them recorded once and resubmitted.
//
// Device tests run on whatever device MLLM_VK_DEVICE selects (lavapipe on CI). Without a Vulkan
// device they are skipped with the reason, except when CI=true: there a missing device fails.
#ifdef MLLM_HAVE_VULKAN

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels/float_ops.h"
#include "backends/vulkan/ops/vk_argmax.h"
#include "backends/vulkan/ops/vk_attention.h"
#include "backends/vulkan/ops/vk_elementwise.h"
#include "backends/vulkan/ops/vk_kv_store.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_rms_norm.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_device.h"
#include "backends/vulkan/vk_memory.h"
#include "backends/vulkan/vk_self_test.h"
#include "backends/vulkan/vk_sequence.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quant/quant.h"
#include "tests/support/argmax_rows.h"
#include "tests/support/matmul_reference.h"
#include "tests/support/vulkan_fixture.h"

namespace mllm::vk {
namespace {

using VulkanTest = test::VulkanContextTest;
using test::random_floats;
using test::random_weights;
using test::Reference;
using test::reference_matmul;

// Both attention kernels (the workgroup one GPUs run, the barrier-free one CPU devices run) give
// the same result on this device, over odd shapes: the self-test checks the device's own kernel
// against a host reference, this ties the other one to it. Tokens 0..rows-1 at positions
// 3..rows+2 (earlier rows of the cache written in a first step), GQA groups of 1 to 8.
void expect_rounded_like_core_quant(Context& c, const Allocation& rounded,
                                    const std::vector<float>& y, int64_t rows, int64_t cols,
                                    DType type, bool packed);

TEST_F(VulkanTest, AttentionKernelsAgree) {
    struct Shape {
        int64_t rows;
        int n_head, n_head_kv, head_dim;
    };
    // Decode (one token) lays the CPU kernel's invocations out by heads: 9, 7 and 32 heads make
    // workgroups of 5, 4 and 8 lanes, the last one partly empty.
    for (const Shape sh : {Shape{1, 9, 3, 64}, Shape{1, 7, 7, 6}, Shape{1, 32, 4, 64},
                           Shape{5, 4, 1, 128}, Shape{7, 6, 6, 32}, Shape{3, 8, 2, 6}}) {
        const int64_t n_ctx = 16, kv_width = int64_t{sh.n_head_kv} * sh.head_dim;
        const int64_t q_width = int64_t{sh.n_head} * sh.head_dim;
        std::mt19937 rng(static_cast<uint32_t>(sh.rows * 100 + sh.head_dim));
        std::uniform_real_distribution<float> dist(-1, 1);
        std::vector<float> q(static_cast<size_t>(sh.rows * q_width));
        std::vector<float> kv(static_cast<size_t>(n_ctx * kv_width));
        for (float& v : q) v = dist(rng);
        for (float& v : kv) v = dist(rng);
        std::vector<int32_t> all_pos(static_cast<size_t>(n_ctx)), pos(static_cast<size_t>(sh.rows));
        for (int64_t i = 0; i < n_ctx; ++i)
            all_pos[static_cast<size_t>(i)] = static_cast<int32_t>(i);
        for (int64_t i = 0; i < sh.rows; ++i)
            pos[static_cast<size_t>(i)] = static_cast<int32_t>(3 + i);
        Allocation qa = upload(q), kva = upload(kv), all = upload(all_pos), pa = upload(pos);
        Allocation kc = ctx().memory().allocate(static_cast<VkDeviceSize>(2 * n_ctx * kv_width));
        Allocation vc = ctx().memory().allocate(static_cast<VkDeviceSize>(2 * n_ctx * kv_width));
        // 0: the workgroup kernel, 1: the barrier-free one as the device runs it, 2: the same
        // with the caches through storage buffers (1 reads them through texel buffers on CPU
        // devices).
        std::vector<float> out[3];
        for (int layout = 0; layout < 3; ++layout) {
            // Storage-buffer caches on two shapes only (each head size compiles its own
            // pipelines, slowly on lavapipe): a wide head and one read 2 halfs per load.
            if (layout == 2 && sh.head_dim != 64 && sh.head_dim != 6) {
                out[2] = out[1];
                continue;
            }
            Allocation ya = ctx().memory().allocate(q.size() * sizeof(float));
            // Both kernels also round their output to Q8_0 blocks where heads are whole blocks,
            // the workgroup kernel packed for the integer dot-product matmuls: checked against
            // core/quant's rounding below, on one head size (each compiles its own pipeline,
            // slowly on lavapipe; the self-test covers another).
            const bool round = layout < 2 && sh.head_dim == 64;
            const bool packed = layout == 0;
            Allocation ra = ctx().memory().allocate(q.size() * sizeof(float));
            Sequence seq(ctx().device());
            seq.begin();
            KvStoreArgs s;  // the whole cache, keys and values alike
            s.rows = n_ctx;
            s.width = kv_width;
            s.n_ctx = n_ctx;
            s.k = s.v = kva.range();
            s.positions = all.range();
            s.k_cache = kc.range();
            s.v_cache = vc.range();
            record_kv_store(ctx(), seq, s);
            seq.barrier();
            AttentionArgs a;
            a.rows = sh.rows;
            a.n_head = sh.n_head;
            a.n_head_kv = sh.n_head_kv;
            a.head_dim = sh.head_dim;
            a.n_ctx = n_ctx;
            a.scale = 0.3f;
            a.q = qa.range();
            a.positions = pa.range();
            a.k_cache = kc.range();
            a.v_cache = vc.range();
            a.out = ya.range();
            a.cpu_layout = layout == 0 ? 0 : 1;
            if (layout == 2) a.texel_cache = 0;
            if (round) a.rounded = ra.range();
            a.round_packed = packed;
            record_attention(ctx(), seq, a);
            seq.end();
            seq.run();
            out[layout] = download(ya, q.size());
            if (round) {
                SCOPED_TRACE(str_cat("rounded output of kernel ", layout, ", ", sh.rows, " rows"));
                expect_rounded_like_core_quant(ctx(), ra, out[layout], sh.rows, q_width,
                                               DType::Q8_0, packed);
                if (HasFatalFailure()) return;
            }
        }
        for (int layout = 1; layout < 3; ++layout)
            for (size_t i = 0; i < q.size(); ++i)
                ASSERT_NEAR(out[0][i], out[layout][i], 1e-5)
                    << "kernel " << layout << ", rows " << sh.rows << ", heads " << sh.n_head << "/"
                    << sh.n_head_kv << " of " << sh.head_dim << ", element " << i;
    }
}

// --- Op families against the CPU reference ---

struct MatMulCase {
    DType type;
    int64_t m, k, n;
    MatMulConfig config;
};

std::string describe(const MatMulCase& c) {
    return str_cat(dtype_name(c.type), " m=", c.m, " k=", c.k, " n=", c.n,
                   " workgroup=", c.config.workgroup, " rows=", c.config.rows,
                   " tokens=", c.config.tokens);
}

TEST_F(VulkanTest, MatMulMatchesReferenceOnOddShapes) {
    const uint32_t sg = ctx().props().subgroup_size;
    // The device default, one subgroup per workgroup, and several subgroups with ragged tiles.
    const MatMulConfig configs[] = {{}, {sg, 1, 1}, {std::min(4 * sg, 256u), 3, 2}};
    std::vector<MatMulCase> cases;
    for (DType t : {DType::F32, DType::Q8_0, DType::Q4_0}) {
        std::vector<int64_t> ks = {32, 96, 576};  // one block, several, a model's width
        if (t == DType::F32) ks.push_back(33);    // float rows need no blocks
        for (int64_t k : ks)
            for (int64_t m : {1, 3, 33, 1000})
                for (int64_t n : {1, 3, 5})
                    for (const MatMulConfig& c : configs) cases.push_back({t, m, k, n, c});
    }
    std::mt19937 rng(1234);
    Sequence seq(ctx().device());
    for (const MatMulCase& c : cases) {
        SCOPED_TRACE(describe(c));
        const auto w = random_weights(c.type, c.m, c.k, rng);
        const auto x = random_floats(static_cast<size_t>(c.n * c.k), rng);
        Allocation wa = upload(w);
        Allocation xa = upload(x);
        Allocation ya = ctx().memory().allocate(static_cast<size_t>(c.n * c.m) * sizeof(float));
        MatMulArgs args;
        args.weight_type = c.type;
        args.m = c.m;
        args.k = c.k;
        args.n = c.n;
        args.w = wa.range();
        args.x = xa.range();
        args.y = ya.range();
        seq.begin();
        record_matmul(ctx(), seq, args, c.config);
        seq.end();
        seq.run();
        const auto y = download(ya, static_cast<size_t>(c.n * c.m));
        const Reference reference = reference_matmul(c.type, w, x, c.m, c.k, c.n);
        const std::vector<double>& ref = reference.y;
        const std::vector<double>& mag = reference.magnitude;
        int bad = 0;
        for (size_t i = 0; i < y.size() && bad < 5; ++i) {
            const double tol = 3e-5 * mag[i] + 1e-6;
            if (std::fabs(y[i] - ref[i]) > tol) {
                ADD_FAILURE() << "y[token " << i / c.m << ", row " << i % c.m << "] = " << y[i]
                              << ", reference " << ref[i] << " (tolerance " << tol << ")";
                ++bad;
            }
        }
        if (bad > 0) break;
    }
}

TEST_F(VulkanTest, MatMulBeyondTheWorkgroupCountLimit) {
    // More row groups than a dispatch's x dimension allows: the rest continues in z. The limit
    // is lowered to 1000 (devices allow 65535 to 2^31 - 1, too many rows to test).
    constexpr uint32_t kMaxX = 1000;
    const int64_t m = 3 * kMaxX + 457;
    const int64_t k = 32;
    std::mt19937 rng(99);
    const auto w = random_weights(DType::Q4_0, m, k, rng);
    const auto x = random_floats(k, rng);
    Allocation wa = upload(w);
    Allocation xa = upload(x);
    Allocation ya = ctx().memory().allocate(static_cast<size_t>(m) * sizeof(float));
    MatMulArgs args;
    args.weight_type = DType::Q4_0;
    args.m = m;
    args.k = k;
    args.n = 1;
    args.w = wa.range();
    args.x = xa.range();
    args.y = ya.range();
    Sequence seq(ctx().device());
    seq.begin();
    MatMulConfig config{ctx().props().subgroup_size, 1, 1};
    config.row_per_invocation = 0;  // a row group per row, so m groups
    config.max_groups_x = kMaxX;
    record_matmul(ctx(), seq, args, config);
    EXPECT_EQ(seq.dispatches(), 1u);
    seq.end();
    seq.run();
    const auto y = download(ya, static_cast<size_t>(m));
    const Reference reference = reference_matmul(DType::Q4_0, w, x, m, k, 1);
    const std::vector<double>& ref = reference.y;
    const std::vector<double>& mag = reference.magnitude;
    int bad = 0;
    for (int64_t r = 0; r < m && bad < 5; ++r)
        if (std::fabs(y[r] - ref[r]) > 3e-5 * mag[r] + 1e-6) {
            ADD_FAILURE() << "row " << r << ": " << y[r] << " vs " << ref[r];
            ++bad;
        }
}

// RMSNorm on odd shapes and workgroup sizes against the CPU kernel, on the suite's context.
void check_rms_norm(Context& c) {
    std::mt19937 rng(5);
    const uint32_t sg = c.props().subgroup_size;
    for (int64_t rows : {1, 3, 33}) {
        for (int64_t cols : {1, 7, 576, 4096}) {
            for (bool weighted : {true, false}) {
                for (bool add : {false, true}) {  // with the residual add fused in front
                    for (uint32_t wg : {0u, sg, 3 * sg, 4 * sg}) {
                        SCOPED_TRACE(str_cat("rows=", rows, " cols=", cols, " weight=", weighted,
                                             " add=", add, " workgroup=", wg));
                        const auto x = random_floats(static_cast<size_t>(rows * cols), rng, -3, 3);
                        const auto b = random_floats(static_cast<size_t>(rows * cols), rng, -3, 3);
                        const auto w = random_floats(static_cast<size_t>(cols), rng, 0.5f, 1.5f);
                        std::vector<float> sum(x.size());
                        cpu::add(x.data(), b.data(), sum.data(), cols, false, 0, rows);
                        const std::vector<float>& normed = add ? sum : x;
                        std::vector<float> ref(x.size());
                        const float eps = 1e-5f;
                        cpu::rms_norm_mul(normed.data(), weighted ? w.data() : nullptr, ref.data(),
                                          cols, eps, 0, rows);
                        Allocation xa = c.memory().allocate(x.size() * sizeof(float));
                        Allocation ba = c.memory().allocate(x.size() * sizeof(float));
                        Allocation sa = c.memory().allocate(x.size() * sizeof(float));
                        Allocation wa = c.memory().allocate(w.size() * sizeof(float));
                        Allocation ya = c.memory().allocate(x.size() * sizeof(float));
                        c.write(xa, 0, x.data(), x.size() * sizeof(float));
                        c.write(ba, 0, b.data(), b.size() * sizeof(float));
                        c.write(wa, 0, w.data(), w.size() * sizeof(float));
                        RmsNormArgs args;
                        args.rows = rows;
                        args.cols = cols;
                        args.eps = eps;
                        args.x = xa.range();
                        if (weighted) args.w = wa.range();
                        args.y = ya.range();
                        if (add) {
                            args.b = ba.range();
                            args.sum = sa.range();
                        }
                        Sequence seq(c.device());
                        seq.begin();
                        record_rms_norm(c, seq, args, wg);
                        seq.end();
                        seq.run();
                        std::vector<float> y(x.size());
                        c.read(ya, 0, y.data(), y.size() * sizeof(float));
                        for (size_t i = 0; i < y.size(); ++i)
                            ASSERT_NEAR(y[i], ref[i], 1e-5f * std::fabs(ref[i]) + 1e-6f)
                                << "at " << i;
                        if (add) {
                            std::vector<float> got(sum.size());
                            c.read(sa, 0, got.data(), got.size() * sizeof(float));
                            ASSERT_EQ(got, sum);
                        }
                    }
                }
            }
        }
    }
}

// The rounded copy a kernel wrote (rows of `cols`, Q8_0/Q8_K floats or packed Q8_0) equals
// core/quant's rounding of y, the output it rounded, bit for bit.
void expect_rounded_like_core_quant(Context& c, const Allocation& rounded,
                                    const std::vector<float>& y, int64_t rows, int64_t cols,
                                    DType type, bool packed) {
    std::vector<uint8_t> blocks(row_bytes(type, cols));
    for (int64_t r = 0; r < rows; ++r) {
        quantize_row(type, y.data() + r * cols, blocks.data(), cols);
        if (packed) {
            const int64_t words = q8_0_packed_words(cols);
            std::vector<uint32_t> got(static_cast<size_t>(words));
            c.read(rounded, static_cast<size_t>(r * words) * 4, got.data(), got.size() * 4);
            for (int64_t blk = 0; blk < cols / 32; ++blk) {
                const uint8_t* block = blocks.data() + blk * 34;
                uint16_t d = 0;
                std::memcpy(&d, block, 2);
                ASSERT_EQ(std::memcmp(got.data() + blk * 8, block + 2, 32), 0)
                    << "quants of row " << r << " block " << blk;
                float scale = 0;
                std::memcpy(&scale, got.data() + cols / 4 + blk, 4);
                ASSERT_EQ(scale, fp16_to_fp32(d)) << "row " << r << " block " << blk;
            }
        } else {
            std::vector<float> want(static_cast<size_t>(cols)), got(want.size());
            dequantize_row(type, blocks.data(), want.data(), cols);
            c.read(rounded, static_cast<size_t>(r * cols) * 4, got.data(), got.size() * 4);
            ASSERT_EQ(got, want) << "row " << r;
        }
    }
}

// The norm's output rounded in the same dispatch (Q8_0, Q8_K, packed Q8_0), with and without the
// add: bit for bit core/quant's rounding of the output the norm wrote.
void check_rms_norm_rounding(Context& c) {
    std::mt19937 rng(8);
    struct Format {
        DType type;
        bool packed;
    };
    for (const Format f :
         {Format{DType::Q8_0, false}, Format{DType::Q8_K, false}, Format{DType::Q8_0, true}}) {
        for (int64_t cols : {256, 576}) {
            if (cols % dtype_traits(f.type).block_size != 0 ||
                (f.type == DType::Q8_K && cols != 256))
                continue;
            for (bool add : {false, true}) {
                for (uint32_t wg : {0u, 3 * c.props().subgroup_size}) {
                    SCOPED_TRACE(str_cat(dtype_name(f.type), f.packed ? " packed" : "",
                                         " cols=", cols, " add=", add, " workgroup=", wg));
                    const int64_t rows = 3;
                    const auto x = random_floats(static_cast<size_t>(rows * cols), rng, -3, 3);
                    const auto b = random_floats(x.size(), rng, -3, 3);
                    const auto w = random_floats(static_cast<size_t>(cols), rng, 0.5f, 1.5f);
                    const size_t bytes = x.size() * sizeof(float);
                    Allocation xa = c.memory().allocate(bytes), ba = c.memory().allocate(bytes);
                    Allocation wa = c.memory().allocate(w.size() * 4),
                               ya = c.memory().allocate(bytes);
                    Allocation sa = c.memory().allocate(bytes), ra = c.memory().allocate(bytes);
                    c.write(xa, 0, x.data(), bytes);
                    c.write(ba, 0, b.data(), bytes);
                    c.write(wa, 0, w.data(), w.size() * 4);
                    RmsNormArgs args;
                    args.rows = rows;
                    args.cols = cols;
                    args.eps = 1e-5f;
                    args.x = xa.range();
                    args.w = wa.range();
                    args.y = ya.range();
                    if (add) {
                        args.b = ba.range();
                        args.sum = sa.range();
                    }
                    args.rounded = ra.range();
                    args.round_format = f.type;
                    args.round_packed = f.packed;
                    Sequence seq(c.device());
                    seq.begin();
                    record_rms_norm(c, seq, args, wg);
                    seq.end();
                    seq.run();
                    std::vector<float> y(x.size());
                    c.read(ya, 0, y.data(), bytes);
                    expect_rounded_like_core_quant(c, ra, y, rows, cols, f.type, f.packed);
                    if (::testing::Test::HasFatalFailure()) return;
                }
            }
        }
    }
}

// SwiGLU rounding its output for the down projection in the same dispatch, in place as the
// gated matmul runs it: y = silu(gate) * up as the CPU kernel computes it, and the rounded copy
// core/quant's rounding of that y, in every format.
TEST_F(VulkanTest, SwiGluRoundsItsOutputLikeCoreQuant) {
    std::mt19937 rng(9);
    const int64_t rows = 3, cols = 512;
    struct Format {
        DType type;
        bool packed;
    };
    for (const Format f :
         {Format{DType::Q8_0, false}, Format{DType::Q8_K, false}, Format{DType::Q8_0, true}}) {
        SCOPED_TRACE(str_cat(dtype_name(f.type), f.packed ? " packed" : ""));
        const auto gate = random_floats(static_cast<size_t>(rows * cols), rng, -6, 6);
        const auto up = random_floats(gate.size(), rng, -3, 3);
        std::vector<float> ref(gate.size());
        cpu::swiglu(gate.data(), up.data(), ref.data(), cols, 0, rows);
        Allocation ga = upload(gate), ua = upload(up);
        Allocation ra = ctx().memory().allocate(gate.size() * 4);
        run([&](Sequence& seq) {
            ElementwiseArgs e;
            e.op = Elementwise::SwiGlu;
            e.n = rows * cols;
            e.cols = cols;
            e.a = ga.range();
            e.b = ua.range();
            e.y = ga.range();  // in place over the gate
            e.rounded = ra.range();
            e.round_format = f.type;
            e.round_packed = f.packed;
            record_elementwise(ctx(), seq, e);
        });
        const std::vector<float> y = download(ga, gate.size());
        for (size_t i = 0; i < y.size(); ++i)
            ASSERT_NEAR(y[i], ref[i], 1e-5f * std::fabs(ref[i]) + 1e-6f) << "at " << i;
        expect_rounded_like_core_quant(ctx(), ra, y, rows, cols, f.type, f.packed);
    }
}

TEST_F(VulkanTest, RmsNormMatchesTheCpuKernel) {
    check_rms_norm(ctx());
    check_rms_norm_rounding(ctx());
}

// A driver whose subgroup arithmetic is turned off (the workaround table, played here by
// MLLM_VK_DISABLE_FEATURES): the kernels take their layouts without subgroup reductions.
class VulkanNoSubgroupsTest : public test::VulkanContextTest {
  protected:
    static void SetUpTestSuite() {
        ::setenv("MLLM_VK_DISABLE_FEATURES", "subgroup_arithmetic", 1);
        test::VulkanContextTest::SetUpTestSuite();
        ::unsetenv("MLLM_VK_DISABLE_FEATURES");
    }
};

TEST_F(VulkanNoSubgroupsTest, RmsNormReducesThroughSharedMemory) {
    ASSERT_FALSE(ctx().props().subgroup_reductions());
    ASSERT_FALSE(ctx().props().workarounds.empty());
    check_rms_norm(ctx());
    check_rms_norm_rounding(ctx());
}

TEST_F(VulkanTest, ArgmaxMatchesTheCpuKernel) {
    for (int64_t cols : {int64_t{1}, int64_t{7}, int64_t{1001}, int64_t{49155}}) {
        for (uint32_t wg : {0u, 1u, 3u, 64u}) {
            SCOPED_TRACE(str_cat("cols=", cols, " workgroup=", wg));
            const int64_t rows = 5;
            const std::vector<float> x = test::argmax_rows(rows, cols, 17);
            std::vector<int32_t> want(static_cast<size_t>(rows));
            cpu::argmax(x.data(), want.data(), cols, 0, rows);
            Allocation xa = upload(x);
            Allocation ya = ctx().memory().allocate(static_cast<size_t>(rows + 2) * 4);
            run([&](Sequence& seq) {
                ArgmaxArgs a;
                a.rows = rows;
                a.cols = cols;
                a.x = xa.range();
                a.y = ya.range();
                a.y_offset = 2;
                record_argmax(ctx(), seq, a, wg);
            });
            std::vector<int32_t> got(static_cast<size_t>(rows));
            ctx().read(ya, 8, got.data(), got.size() * 4);
            EXPECT_EQ(got, want);
        }
    }
}

TEST_F(VulkanTest, RmsNormInPlace) {
    std::mt19937 rng(11);
    const int64_t rows = 4, cols = 300;
    const auto x = random_floats(static_cast<size_t>(rows * cols), rng);
    const auto w = random_floats(static_cast<size_t>(cols), rng);
    std::vector<float> ref(x.size());
    cpu::rms_norm_mul(x.data(), w.data(), ref.data(), cols, 1e-6f, 0, rows);
    Allocation xa = upload(x);
    Allocation wa = upload(w);
    RmsNormArgs args;
    args.rows = rows;
    args.cols = cols;
    args.x = args.y = xa.range();
    args.w = wa.range();
    Sequence seq(ctx().device());
    seq.begin();
    record_rms_norm(ctx(), seq, args, 4 * ctx().props().subgroup_size);
    seq.end();
    seq.run();
    const auto y = download(xa, x.size());
    for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], ref[i], 1e-5f * std::fabs(ref[i]) + 1e-6f) << "at " << i;
}

TEST_F(VulkanTest, SequenceRecordedOnceResubmitted) {
    // RMSNorm, a barrier, then a Q8_0 GEMV of its output: recorded once, submitted three times
    // with the output cleared in between, then once more after the input changed.
    std::mt19937 rng(3);
    const int64_t k = 576, m = 33, n = 1;
    const auto w = random_weights(DType::Q8_0, m, k, rng);
    const auto norm_w = random_floats(static_cast<size_t>(k), rng, 0.5f, 1.5f);
    auto x = random_floats(static_cast<size_t>(k), rng);
    Allocation wa = upload(w);
    Allocation na = upload(norm_w);
    Allocation xa = upload(x);
    Allocation ha = ctx().memory().allocate(static_cast<size_t>(k) * sizeof(float));
    Allocation ya = ctx().memory().allocate(static_cast<size_t>(m) * sizeof(float));

    Sequence seq(ctx().device());
    seq.begin();
    RmsNormArgs norm;
    norm.rows = n;
    norm.cols = k;
    norm.x = xa.range();
    norm.w = na.range();
    norm.y = ha.range();
    record_rms_norm(ctx(), seq, norm);
    seq.barrier();
    MatMulArgs mm;
    mm.weight_type = DType::Q8_0;
    mm.m = m;
    mm.k = k;
    mm.n = n;
    mm.w = wa.range();
    mm.x = ha.range();
    mm.y = ya.range();
    record_matmul(ctx(), seq, mm);
    seq.end();
    EXPECT_EQ(seq.dispatches(), 2u);

    auto expected = [&] {
        std::vector<float> h(x.size());
        cpu::rms_norm_mul(x.data(), norm_w.data(), h.data(), k, norm.eps, 0, n);
        const Reference reference = reference_matmul(DType::Q8_0, w, h, m, k, n);
        return std::make_pair(reference.y, reference.magnitude);
    };
    auto [ref, mag] = expected();
    std::vector<float> first;
    const std::vector<float> zeros(static_cast<size_t>(m), 0.0f);
    for (int round = 0; round < 3; ++round) {
        ctx().write(ya, 0, zeros.data(), zeros.size() * sizeof(float));
        seq.run();
        const auto y = download(ya, static_cast<size_t>(m));
        if (round == 0) {
            first = y;
            for (int64_t r = 0; r < m; ++r)
                EXPECT_NEAR(y[r], ref[r], 1e-4 * mag[r] + 1e-6) << "row " << r;
        } else {
            EXPECT_EQ(y, first) << "submit " << round + 1 << " differs from the first";
        }
    }
    // New input, same recording.
    x = random_floats(static_cast<size_t>(k), rng);
    ctx().write(xa, 0, x.data(), x.size() * sizeof(float));
    seq.submit();
    seq.wait();
    std::tie(ref, mag) = expected();
    const auto y = download(ya, static_cast<size_t>(m));
    for (int64_t r = 0; r < m; ++r) EXPECT_NEAR(y[r], ref[r], 1e-4 * mag[r] + 1e-6) << "row " << r;
}

}  // namespace
}  // namespace mllm::vk

#endif  // MLLM_HAVE_VULKAN

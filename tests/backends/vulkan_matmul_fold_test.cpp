// The Vulkan matmul kernels that fold the ops around a matmul into it (the repacked Q4_0 kernel on
// CPU devices): SwiGLU over paired gate and up rows, a residual add and the RMSNorm after it, and
// llama's rotary embedding with the KV-cache store after the queries', keys' and values'
// matmul. Each against the products and ops computed here in double from core/quant's
// dequantization; without a device that folds, skipped with the reason.
#ifdef MLLM_HAVE_VULKAN

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_rope.h"
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_memory.h"
#include "backends/vulkan/vk_sequence.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/fp16.h"
#include "tests/support/matmul_reference.h"
#include "tests/support/vulkan_fixture.h"

namespace mllm::vk {
namespace {

using test::expect_close;
using test::random_floats;
using test::random_weights;
using test::Reference;
using test::reference_matmul;
using test::rounded_to_q8_0;
using test::tolerance;

using VulkanMatMulFold = test::VulkanContextTest;

TEST_F(VulkanMatMulFold, GatedPairsWriteSiluOfGateTimesUp) {
    // A SwiGLU block's gate and up rows interleaved and repacked, one kernel writing
    // silu(gate) * up: ragged row counts against the 16-row groups, tokens past a workgroup's 4,
    // y at an offset with a padded stride, and the weights split over several dispatches.
    if (!matmul_gates_pairs(ctx().props(), DType::Q4_0))
        GTEST_SKIP() << "the device does not pair gate and up rows";
    std::mt19937 rng(41);
    const DType t = DType::Q4_0;
    for (int64_t rows : {1, 13, 67}) {
        for (int64_t k : {32, 96}) {
            for (int64_t n : {1, 6}) {
                for (bool split : {false, true}) {
                    if (split && (rows != 67 || n != 6)) continue;
                    SCOPED_TRACE(str_cat("rows=", rows, " k=", k, " n=", n, split ? " split" : ""));
                    const auto gate = random_weights(t, rows, k, rng);
                    const auto up = random_weights(t, rows, k, rng);
                    const auto x = random_floats(static_cast<size_t>(n * k), rng);
                    const auto pairs = interleave_gate_up(t, gate.data(), up.data(), rows, k);
                    std::vector<uint8_t> packed(repacked_bytes(t, 2 * rows, k));
                    repack_for_matmul(t, pairs.data(), 2 * rows, k, packed.data());
                    const int64_t y_off = 2, y_stride = rows + 1;
                    Allocation wa = upload(packed);
                    Allocation xa = upload(x);
                    Allocation ya = upload(
                        std::vector<float>(static_cast<size_t>(y_off + n * y_stride), -7.0f));
                    MatMulArgs args =
                        matmul_args(t, 2 * rows, k, n, wa.range(), xa.range(), ya.range());
                    args.repacked = true;
                    args.gated = true;
                    args.y_offset = y_off;
                    args.y_stride = y_stride;
                    MatMulConfig config;
                    if (split) config.max_binding = packed.size() / 3 + slack();
                    const size_t dispatches =
                        run([&](Sequence& seq) { record_matmul(ctx(), seq, args, config); });
                    if (split) {
                        EXPECT_GT(dispatches, 1u) << "the weights were not split";
                    }
                    const auto ys = download(ya, static_cast<size_t>(y_off + n * y_stride));
                    const std::vector<float> xq = rounded_to_q8_0(x, k);
                    const Reference g = reference_matmul(t, gate, xq, rows, k, n);
                    const Reference u = reference_matmul(t, up, xq, rows, k, n);
                    for (int64_t tok = 0; tok < n; ++tok) {
                        for (int64_t r = 0; r < rows; ++r) {
                            const size_t i = static_cast<size_t>(tok * rows + r);
                            const double silu = g.y[i] / (1.0 + std::exp(-g.y[i]));
                            // silu's slope is below 1.1.
                            const double tol = 1.1 * tolerance(g.magnitude[i]) * std::fabs(u.y[i]) +
                                               std::fabs(silu) * tolerance(u.magnitude[i]) + 1e-6;
                            EXPECT_NEAR(ys[static_cast<size_t>(y_off + tok * y_stride + r)],
                                        silu * u.y[i], tol)
                                << "token " << tok << ", row " << r;
                        }
                        EXPECT_EQ(ys[static_cast<size_t>(y_off + tok * y_stride + rows)], -7.0f)
                            << "the stride's padding was written";
                    }
                    if (HasFailure()) return;
                }
            }
        }
    }
}

TEST_F(VulkanMatMulFold, FoldsTheResidualAddAndTheNormAroundIt) {
    // A residual add and the RMSNorm after it folded into the repacked Q4_0 kernels around
    // them: the first adds the residual (a separate buffer at an offset, then y itself, in
    // place) and leaves the sum times the norm's weight quantized to Q8_0 blocks and its partial
    // sums of squares; the second multiplies the norm's output. Against the add, the
    // quantization (of the first kernel's sums), the norm and the products done here.
    if (!matmul_folds_norm(ctx().props(), DType::Q4_0))
        GTEST_SKIP() << "the device does not fold norms into matmuls";
    std::mt19937 rng(43);
    const DType t = DType::Q4_0;
    for (int64_t m : {64, 96, 576}) {  // the second matmul's k: whole blocks
        for (int64_t k : {32, 96}) {
            for (int64_t n : {1, 6}) {
                for (bool in_place : {false, true}) {
                    if (in_place && (m != 96 || n != 6)) continue;
                    SCOPED_TRACE(str_cat("m=", m, " k=", k, " n=", n, in_place ? " in place" : ""));
                    const int64_t m2 = 29;  // the second matmul's rows
                    const auto w = random_weights(t, m, k, rng);
                    const auto w2 = random_weights(t, m2, m, rng);
                    const auto x = random_floats(static_cast<size_t>(n * k), rng);
                    const auto gain = random_floats(static_cast<size_t>(m), rng);
                    const auto residual = random_floats(static_cast<size_t>(n * m), rng);
                    const float eps = 1e-5f;
                    // The sum and its norm's scale per token.
                    Reference sum = reference_matmul(t, w, rounded_to_q8_0(x, k), m, k, n);
                    std::vector<float> norm_scale(static_cast<size_t>(n));
                    for (int64_t tok = 0; tok < n; ++tok) {
                        double squares = 0;
                        for (int64_t i = 0; i < m; ++i) {
                            const size_t at = static_cast<size_t>(tok * m + i);
                            sum.y[at] += residual[at];
                            sum.magnitude[at] += std::fabs(residual[at]);
                            squares += sum.y[at] * sum.y[at];
                        }
                        norm_scale[tok] = static_cast<float>(1.0 / std::sqrt(squares / m + eps));
                    }

                    std::vector<uint8_t> packed(repacked_bytes(t, m, k)),
                        packed2(repacked_bytes(t, m2, m));
                    repack_for_matmul(t, w.data(), m, k, packed.data());
                    repack_for_matmul(t, w2.data(), m2, m, packed2.data());
                    const int64_t r_off = in_place ? 0 : 3;
                    std::vector<float> r_buf(static_cast<size_t>(r_off), 0.0f);
                    r_buf.insert(r_buf.end(), residual.begin(), residual.end());
                    Allocation wa = upload(packed), wa2 = upload(packed2);
                    Allocation xa = upload(x), ga = upload(gain), ra = upload(r_buf);
                    Allocation ya =
                        in_place
                            ? Allocation{}
                            : ctx().memory().allocate(static_cast<size_t>(n * m) * sizeof(float));
                    const int64_t words = matmul_norm_input_words(m);
                    Allocation weighted =
                        ctx().memory().allocate(static_cast<size_t>(n * words) * 4);
                    const int64_t partials = matmul_norm_partials(m);
                    Allocation pa =
                        ctx().memory().allocate(static_cast<size_t>(n * partials + 1) * 4);
                    Allocation ya2 = ctx().memory().allocate(static_cast<size_t>(n * m2) * 4);
                    MatMulArgs first = matmul_args(t, m, k, n, wa.range(), xa.range(),
                                                   (in_place ? ra : ya).range());
                    first.repacked = true;
                    first.residual = ra.range();
                    first.residual_offset = r_off;
                    first.norm_out.weight = ga.range();
                    first.norm_out.weighted = weighted.range();
                    first.norm_out.partials = pa.range();
                    first.norm_out.partials_offset = 1;
                    MatMulArgs second =
                        matmul_args(t, m2, m, n, wa2.range(), weighted.range(), ya2.range());
                    second.repacked = true;
                    second.norm_in.partials = pa.range();
                    second.norm_in.partials_offset = 1;
                    second.norm_in.count = partials;
                    second.norm_in.eps = eps;
                    run([&](Sequence& seq) {
                        record_matmul(ctx(), seq, first);
                        seq.barrier();
                        record_matmul(ctx(), seq, second);
                    });
                    const auto sums = download(in_place ? ra : ya, static_cast<size_t>(n * m));
                    {
                        SCOPED_TRACE("the sum");
                        expect_close(sums, sum, m);
                    }
                    // The sum times the weight, quantized: per block of 32 a scale within fp16
                    // rounding of amax / 127, each quant within half a step of its value (a
                    // step of the exact scale; the stored one carries fp16's 2^-11 more).
                    std::vector<uint32_t> q(static_cast<size_t>(n * words));
                    ctx().read(weighted, 0, q.data(), q.size() * 4);
                    for (int64_t tok = 0; tok < n; ++tok) {
                        for (int64_t b = 0; b < m / 32; ++b) {
                            float amax = 0, d = 0;
                            for (int64_t i = 32 * b; i < 32 * b + 32; ++i)
                                amax = std::max(amax, std::fabs(sums[tok * m + i] * gain[i]));
                            std::memcpy(&d, &q[static_cast<size_t>(tok * words + m + b)], 4);
                            ASSERT_NEAR(d, amax / 127, 1e-3 * amax / 127) << "block " << b;
                            for (int64_t i = 32 * b; i < 32 * b + 32; ++i) {
                                const auto qi =
                                    static_cast<int32_t>(q[static_cast<size_t>(tok * words + i)]);
                                ASSERT_NEAR(qi * d, sums[tok * m + i] * gain[i],
                                            0.501 * d + std::abs(qi) * d / 2048)
                                    << "token " << tok << " element " << i;
                            }
                        }
                    }
                    {
                        SCOPED_TRACE("the product of its norm");
                        const Reference out = reference_matmul(
                            t, w2, dequantize_norm_input(q.data(), n, m, norm_scale), m2, m, n);
                        expect_close(download(ya2, static_cast<size_t>(n * m2)), out, m2);
                    }
                    if (HasFailure()) return;
                }
            }
        }
    }
}

// The rope's angle as the CPU backend and the shaders compute it, in float: position times
// freq_scale times theta_scale^i by repeated multiplication.
float rope_angle(int32_t position, float freq_scale, float theta_scale, int64_t i) {
    float theta = static_cast<float>(position) * freq_scale;
    for (int64_t j = 0; j < i; ++j) theta *= theta_scale;
    return theta;
}

TEST_F(VulkanMatMulFold, RotatesQueriesAndKeysAndStoresKeysAndValues) {
    // llama's rotary embedding and the KV-cache store folded into the queries', keys' and values'
    // matmul: GQA head layouts, 1 token and 6 (past a workgroup's 4), a bias, an input taken from
    // a folded norm, and positions outside the cache (rotated, not stored). Against the products,
    // rotation and f16 cache rows computed here, and bit for bit against the dispatches it
    // replaces (the group matmul, then record_rope's pair with the store).
    if (!matmul_ropes_pairs(ctx().props(), DType::Q4_0))
        GTEST_SKIP() << "the device does not fold ropes into matmuls";
    std::mt19937 rng(47);
    const DType t = DType::Q4_0;
    struct Case {
        int n_head, n_head_kv, head_dim;
        int64_t k, n;
        bool bias, norm_in;
        float freq_scale;
    };
    const Case cases[] = {{3, 1, 64, 96, 1, false, false, 1.0f},
                          {3, 1, 64, 96, 6, true, false, 1.0f},
                          {4, 2, 8, 32, 6, false, true, 0.5f},
                          {2, 2, 16, 64, 1, true, true, 1.0f}};
    const int32_t all_positions[] = {5, 0, 17, -1, 40, 3};  // -1 and 40: outside the cache
    const int64_t n_ctx = 20;
    const float base = 10000.0f, eps = 1e-5f;
    for (const Case& c : cases) {
        SCOPED_TRACE(str_cat(c.n_head, "/", c.n_head_kv, " heads of ", c.head_dim, ", k=", c.k,
                             " n=", c.n, c.bias ? " bias" : "", c.norm_in ? " norm input" : ""));
        const int64_t k = c.k, n = c.n;
        const int64_t qd = c.n_head * c.head_dim, kvd = c.n_head_kv * c.head_dim;
        const int64_t m = qd + 2 * kvd;
        const auto w = random_weights(t, m, k, rng);
        const auto x = random_floats(static_cast<size_t>(n * k), rng);
        const auto bias =
            c.bias ? random_floats(static_cast<size_t>(m), rng) : std::vector<float>{};
        std::vector<int32_t> positions = {99};  // from offset 1
        positions.insert(positions.end(), all_positions, all_positions + n);
        // A folded norm's input: x quantized (quantize_norm_input), each token scaled by
        // 1 / sqrt(sum of partials / k + eps) as the kernel computes it.
        const int64_t partials = 3;
        const auto sums = random_floats(static_cast<size_t>(n * partials), rng, 1.0f, 40.0f);
        std::vector<uint32_t> xq(static_cast<size_t>(n * matmul_norm_input_words(k)));
        quantize_norm_input(x.data(), n, k, xq.data());
        std::vector<float> norm_scale(static_cast<size_t>(n));
        for (int64_t tok = 0; tok < n; ++tok) {
            float sum = 0.0f;
            for (int64_t i = 0; i < partials; ++i) sum += sums[tok * partials + i];
            norm_scale[tok] = 1.0f / std::sqrt(sum / static_cast<float>(k) + eps);
        }
        const std::vector<float> input =
            c.norm_in ? dequantize_norm_input(xq.data(), n, k, norm_scale) : rounded_to_q8_0(x, k);
        const Reference ref = reference_matmul(t, w, input, m, k, n, bias);

        std::vector<uint8_t> packed(repacked_bytes(t, m, k));
        repack_for_matmul(t, w.data(), m, k, packed.data());
        // The three outputs in one buffer, apart, each dense (as record_rope reads them).
        const int64_t offsets[] = {3, 3 + n * qd + 1, 3 + n * qd + 1 + n * kvd + 2};
        const int64_t widths[] = {qd, kvd, kvd};
        const int64_t y_floats = offsets[2] + n * kvd + 1;
        const std::vector<float> unwritten(static_cast<size_t>(y_floats), -7.0f);
        const std::vector<uint32_t> empty_cache(static_cast<size_t>(n_ctx * kvd / 2), 0xffffffffu);
        Allocation wa = upload(packed), pa = upload(positions);
        Allocation xa = c.norm_in ? upload(xq) : upload(x);
        Allocation sa = upload(sums);
        Allocation ba = c.bias ? upload(bias) : Allocation{};
        Allocation ya = upload(unwritten), kc = upload(empty_cache), vc = upload(empty_cache);
        // The unfolded dispatches' buffers: the products, the rotated queries and keys, caches.
        Allocation products = upload(unwritten), yq = upload(unwritten), yk = upload(unwritten);
        Allocation kc2 = upload(empty_cache), vc2 = upload(empty_cache);
        auto group_args = [&](const Allocation& y) {
            MatMulArgs a = matmul_args(t, m, k, n, wa.range(), xa.range(), y.range());
            a.repacked = true;
            a.y_offset = offsets[0];
            a.y_stride = qd;
            a.more_outputs = {{qd, offsets[1], kvd}, {qd + kvd, offsets[2], kvd}};
            if (c.bias) a.bias = ba.range();
            if (c.norm_in) {
                a.norm_in.partials = sa.range();
                a.norm_in.count = partials;
                a.norm_in.eps = eps;
            }
            return a;
        };
        MatMulArgs folded = group_args(ya);
        folded.rope.positions = pa.range();
        folded.rope.positions_offset = 1;
        folded.rope.k_cache = kc.range();
        folded.rope.v_cache = vc.range();
        folded.rope.n_ctx = n_ctx;
        folded.rope.head_dim = c.head_dim;
        folded.rope.base = base;
        folded.rope.freq_scale = c.freq_scale;
        RopeArgs rope;
        rope.rows = n;
        rope.n_head = c.n_head;
        rope.head_dim = c.head_dim;
        rope.base = base;
        rope.freq_scale = c.freq_scale;
        rope.x = rope.x2 = rope.v = products.range();
        rope.x_offset = offsets[0];
        rope.x2_offset = offsets[1];
        rope.v_offset = offsets[2];
        rope.positions = pa.range();
        rope.positions_offset = 1;
        rope.y = yq.range();
        rope.y_offset = offsets[0];
        rope.n_head2 = c.n_head_kv;
        rope.y2 = yk.range();
        rope.y2_offset = offsets[1];
        rope.k_cache = kc2.range();
        rope.v_cache = vc2.range();
        rope.n_ctx = n_ctx;
        const size_t dispatches = run([&](Sequence& seq) { record_matmul(ctx(), seq, folded); });
        EXPECT_EQ(dispatches, 1u);
        run([&](Sequence& seq) {
            record_matmul(ctx(), seq, group_args(products));
            seq.barrier();
            record_rope(ctx(), seq, rope);
        });

        const auto ys = download(ya, static_cast<size_t>(y_floats));
        std::vector<uint32_t> kw(empty_cache.size()), vw(empty_cache.size());
        ctx().read(kc, 0, kw.data(), 4 * kw.size());
        ctx().read(vc, 0, vw.data(), 4 * vw.size());
        // Against the reference: each output pair (rows 2i, 2i + 1 of a part), rotated by its
        // head's i-th angle for the queries and keys.
        const float theta_scale = rope_theta_scale(base, c.head_dim);
        int bad = 0;
        for (int64_t tok = 0; tok < n && bad < 5; ++tok) {
            const int32_t pos = positions[static_cast<size_t>(1 + tok)];
            for (int64_t row = 0; row < m && bad < 5; row += 2) {
                const int part = row < qd ? 0 : row < qd + kvd ? 1 : 2;
                const int64_t in_part = row - (part == 0 ? 0 : part == 1 ? qd : qd + kvd);
                const size_t at = static_cast<size_t>(tok * m + row);
                double a = ref.y[at], b = ref.y[at + 1];
                double tol = tolerance(ref.magnitude[at]) + tolerance(ref.magnitude[at + 1]);
                if (part < 2) {
                    const double theta =
                        rope_angle(pos, c.freq_scale, theta_scale, in_part % c.head_dim / 2);
                    const double cs = std::cos(theta), sn = std::sin(theta);
                    const double ra = a * cs - b * sn, rb = a * sn + b * cs;
                    a = ra;
                    b = rb;
                    tol += 1e-5 * (std::fabs(a) + std::fabs(b));
                }
                const size_t y_at =
                    static_cast<size_t>(offsets[part] + tok * widths[part] + in_part);
                if (!(std::fabs(ys[y_at] - a) <= tol && std::fabs(ys[y_at + 1] - b) <= tol)) {
                    ADD_FAILURE() << "token " << tok << " row " << row << ": (" << ys[y_at] << ", "
                                  << ys[y_at + 1] << "), reference (" << a << ", " << b << ")";
                    ++bad;
                }
                if (part == 0 || pos < 0 || pos >= n_ctx) continue;
                // The cache word of this pair: both halves, f16-rounded.
                const uint32_t word =
                    (part == 1 ? kw : vw)[static_cast<size_t>(pos * kvd / 2 + in_part / 2)];
                const float h0 = fp16_to_fp32(static_cast<uint16_t>(word & 0xffffu));
                const float h1 = fp16_to_fp32(static_cast<uint16_t>(word >> 16));
                const double half_tol = tol + (std::fabs(a) + std::fabs(b)) / 1024;
                if (!(std::fabs(h0 - a) <= half_tol && std::fabs(h1 - b) <= half_tol)) {
                    ADD_FAILURE() << (part == 1 ? "k" : "v") << " cache row " << pos << " word "
                                  << in_part / 2 << ": (" << h0 << ", " << h1 << "), reference ("
                                  << a << ", " << b << ")";
                    ++bad;
                }
            }
        }
        // Bit for bit against the unfolded dispatches: outputs, caches, what neither wrote.
        const auto products_y = download(products, static_cast<size_t>(y_floats));
        const auto q2 = download(yq, static_cast<size_t>(y_floats));
        const auto k2 = download(yk, static_cast<size_t>(y_floats));
        for (size_t i = 0; i < ys.size(); ++i) {
            const int64_t rel_k = static_cast<int64_t>(i) - offsets[1];
            const int64_t rel_v = static_cast<int64_t>(i) - offsets[2];
            const float want = rel_v >= 0 && rel_v < n * kvd   ? products_y[i]
                               : rel_k >= 0 && rel_k < n * kvd ? k2[i]
                                                               : q2[i];
            if (std::memcmp(&ys[i], &want, 4) != 0) {
                ADD_FAILURE() << "y[" << i << "] = " << ys[i] << ", unfolded " << want;
                break;
            }
        }
        std::vector<uint32_t> kw2(empty_cache.size()), vw2(empty_cache.size());
        ctx().read(kc2, 0, kw2.data(), 4 * kw2.size());
        ctx().read(vc2, 0, vw2.data(), 4 * vw2.size());
        EXPECT_EQ(kw, kw2) << "the k caches differ";
        EXPECT_EQ(vw, vw2) << "the v caches differ";
        if (HasFailure()) return;
    }
}

TEST_F(VulkanMatMulFold, RejectsRopesItCannotFold) {
    // The fold's conditions (MatMulArgs::rope): three outputs, even boundaries and heads, as many
    // key rows as value rows, a cache. Each broken one throws instead of writing garbage.
    if (!matmul_ropes_pairs(ctx().props(), DType::Q4_0))
        GTEST_SKIP() << "the device does not fold ropes into matmuls";
    const int64_t m = 64, k = 32;
    Allocation w = ctx().memory().allocate(repacked_bytes(DType::Q4_0, m, k));
    Allocation a = ctx().memory().allocate(1 << 16);
    MatMulArgs good = matmul_args(DType::Q4_0, m, k, 1, w.range(), a.range(), a.range());
    good.repacked = true;
    good.y_stride = 32;
    good.more_outputs = {{32, 1024, 16}, {48, 2048, 16}};
    good.rope.positions = good.rope.k_cache = good.rope.v_cache = a.range();
    good.rope.n_ctx = 8;
    good.rope.head_dim = 16;
    Sequence seq(ctx().device());
    seq.begin();
    EXPECT_NO_THROW(record_matmul(ctx(), seq, good));
    MatMulArgs one_output = good;
    one_output.more_outputs.clear();
    EXPECT_THROW(record_matmul(ctx(), seq, one_output), Error);
    MatMulArgs odd_boundary = good;
    odd_boundary.more_outputs = {{31, 1024, 17}, {48, 2048, 16}};
    EXPECT_THROW(record_matmul(ctx(), seq, odd_boundary), Error);
    MatMulArgs odd_heads = good;
    odd_heads.rope.head_dim = 15;
    EXPECT_THROW(record_matmul(ctx(), seq, odd_heads), Error);
    MatMulArgs more_keys = good;
    more_keys.more_outputs = {{32, 1024, 18}, {50, 2048, 14}};
    EXPECT_THROW(record_matmul(ctx(), seq, more_keys), Error);
    MatMulArgs no_cache = good;
    no_cache.rope.n_ctx = 0;
    EXPECT_THROW(record_matmul(ctx(), seq, no_cache), Error);
    MatMulArgs gguf_layout = good;
    gguf_layout.repacked = false;
    EXPECT_THROW(record_matmul(ctx(), seq, gguf_layout), Error);
    seq.end();
}

}  // namespace
}  // namespace mllm::vk

#endif  // MLLM_HAVE_VULKAN

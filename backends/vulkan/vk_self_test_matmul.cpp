// The self-test of the matmul families (vk_self_test.h): one weight type's kernels on a small
// problem against the product computed here, and the kernels that fold the ops around a matmul
// into it (SwiGLU, a residual add and norm, llama's rope and the KV-cache store) where the
// device runs them.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_rope.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "backends/vulkan/vk_self_test_util.h"
#include "core/error.h"
#include "core/quant/quant.h"

namespace mllm::vk::self_test {

namespace {

// The gated kernel (silu(gate) * up from paired rows): rows 0..63 of the test matrix as the
// gate, 64..127 as the up projection; wq their GGUF rows, w the same dequantized.
std::string test_gated_matmul(Context& ctx, DType type, const std::vector<uint8_t>& wq,
                              const std::vector<float>& w, int64_t k) {
    const int64_t rows = 64, n = 5;
    const size_t rb = row_bytes(type, k);
    const std::vector<uint8_t> pairs =
        interleave_gate_up(type, wq.data(), wq.data() + rb * rows, rows, k);
    const Allocation wa = upload_repacked(ctx, type, pairs.data(), 2 * rows, k);
    std::vector<float> x = random_floats(static_cast<size_t>(n * k), 9);
    round_rows(DType::Q8_0, x.data(), n, k);  // the input as the kernel quantizes it
    const Allocation xa = upload(ctx, x);
    std::vector<double> want, tol;
    for (int64_t t = 0; t < n; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            double g = 0, u = 0, magnitude = 0;
            for (int64_t i = 0; i < k; ++i) {
                const double xi = x[static_cast<size_t>(t * k + i)];
                g += w[static_cast<size_t>(r * k + i)] * xi;
                u += w[static_cast<size_t>((rows + r) * k + i)] * xi;
                magnitude += std::fabs(w[static_cast<size_t>(r * k + i)] * xi) +
                             std::fabs(w[static_cast<size_t>((rows + r) * k + i)] * xi);
            }
            want.push_back(g / (1 + std::exp(-g)) * u);
            tol.push_back(1e-4 * magnitude * (1 + std::fabs(g) + std::fabs(u)) + 1e-5);
        }
    const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(4 * want.size()));
    run(ctx, [&](Sequence& seq) {
        MatMulArgs a = matmul_args(type, 2 * rows, k, n, wa.range(), xa.range(), ya.range());
        a.repacked = true;
        a.gated = true;
        record_matmul(ctx, seq, a);
    });
    const std::string err = compare(download(ctx, ya, want.size()), want, tol);
    return err.empty() ? "" : "gate and up paired: " + err;
}

// A residual add and the RMSNorm after it folded into two matmuls: rows 0..63 of the test
// matrix (k columns) make the sum of 64 values, then rows 64..95 of a second use of it (its
// first 64 columns, so k >= 64) multiply the sum's norm.
std::string test_folded_norm(Context& ctx, DType type, const std::vector<uint8_t>& wq,
                             const std::vector<float>& w, int64_t k) {
    const int64_t m = 64, m2 = 32, n = 3;
    const size_t rb2 = row_bytes(type, m);
    // The second matrix: the first m columns of rows 64.., requantized as they are (whole
    // blocks of the same values).
    std::vector<uint8_t> wq2(rb2 * m2);
    std::vector<float> w2(static_cast<size_t>(m2 * m));
    for (int64_t r = 0; r < m2; ++r) {
        const float* row = w.data() + (m + r) * k;
        quantize_row(type, row, wq2.data() + rb2 * static_cast<size_t>(r), m);
        dequantize_row(type, wq2.data() + rb2 * static_cast<size_t>(r), w2.data() + r * m, m);
    }
    const Allocation wa = upload_repacked(ctx, type, wq.data(), m, k);
    const Allocation wa2 = upload_repacked(ctx, type, wq2.data(), m2, m);
    std::vector<float> x = random_floats(static_cast<size_t>(n * k), 10);
    const std::vector<float> residual = random_floats(static_cast<size_t>(n * m), 11);
    const std::vector<float> gain = random_floats(static_cast<size_t>(m), 12);
    round_rows(DType::Q8_0, x.data(), n, k);
    std::vector<double> want, tol;
    for (int64_t t = 0; t < n; ++t) {
        std::vector<float> sum(static_cast<size_t>(m));
        double squares = 0, magnitude = 0;
        for (int64_t r = 0; r < m; ++r) {
            double v = residual[static_cast<size_t>(t * m + r)];
            for (int64_t i = 0; i < k; ++i) {
                const double p = double(w[static_cast<size_t>(r * k + i)]) * x[t * k + i];
                v += p;
                magnitude += std::fabs(p);
            }
            sum[static_cast<size_t>(r)] = static_cast<float>(v);
            squares += v * v;
        }
        const double scale = 1.0 / std::sqrt(squares / m + 1e-5);
        for (int64_t r = 0; r < m; ++r)
            sum[static_cast<size_t>(r)] = static_cast<float>(sum[static_cast<size_t>(r)] * scale *
                                                             gain[static_cast<size_t>(r)]);
        round_rows(DType::Q8_0, sum.data(), 1, m);
        for (int64_t r = 0; r < m2; ++r) {
            double v = 0, mag = 0;
            for (int64_t i = 0; i < m; ++i) {
                const double p =
                    double(w2[static_cast<size_t>(r * m + i)]) * sum[static_cast<size_t>(i)];
                v += p;
                mag += std::fabs(p);
            }
            want.push_back(v);
            // The norm's input carries the first product's rounding, relative 1e-4 of it.
            tol.push_back(1e-3 * mag * (1 + 1e-4 * magnitude) + 1e-4);
        }
    }
    const Allocation xa = upload(ctx, x), ra = upload(ctx, residual), ga = upload(ctx, gain);
    const int64_t partials = matmul_norm_partials(m);
    const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(4 * n * m));
    const Allocation weighted =
        ctx.memory().allocate(static_cast<VkDeviceSize>(4 * n * matmul_norm_input_words(m)));
    const Allocation pa = ctx.memory().allocate(static_cast<VkDeviceSize>(4 * n * partials));
    const Allocation ya2 = ctx.memory().allocate(static_cast<VkDeviceSize>(4 * n * m2));
    run(ctx, [&](Sequence& seq) {
        MatMulArgs a = matmul_args(type, m, k, n, wa.range(), xa.range(), ya.range());
        a.repacked = true;
        a.residual = ra.range();
        a.norm_out.weight = ga.range();
        a.norm_out.weighted = weighted.range();
        a.norm_out.partials = pa.range();
        record_matmul(ctx, seq, a);
        seq.barrier();
        MatMulArgs b = matmul_args(type, m2, m, n, wa2.range(), weighted.range(), ya2.range());
        b.repacked = true;
        b.norm_in.partials = pa.range();
        b.norm_in.count = partials;
        b.norm_in.eps = 1e-5f;
        record_matmul(ctx, seq, b);
    });
    const std::string err = compare(download(ctx, ya2, want.size()), want, tol);
    return err.empty() ? "" : "residual add and norm folded: " + err;
}

// llama's rope and the KV-cache store folded into the queries', keys' and values' matmul: rows
// 0..63 of the test matrix as 2 query heads, a key head and a value head of 16, for 3 tokens at
// positions 0, 7 and 3001 (outside the 16-row cache: rotated, not stored); from a plain input,
// then from a folded norm's.
std::string test_folded_rope(Context& ctx, DType type, const std::vector<uint8_t>& wq,
                             const std::vector<float>& w, int64_t k) {
    const int64_t hd = 16, qd = 2 * hd, kvd = hd, m = qd + 2 * kvd, n = 3, n_ctx = 16;
    const int32_t pos[] = {0, 7, 3001};
    const float theta_scale = rope_theta_scale(10000.0f, static_cast<int>(hd)), eps = 1e-5f;
    const Allocation wa = upload_repacked(ctx, type, wq.data(), m, k);
    const std::vector<float> x = random_floats(static_cast<size_t>(n * k), 13);
    const std::vector<float> partials = {30.0f, 2.5f, 7.0f};  // one a token
    // A folded norm's input: x quantized, its blocks' scales then multiplied by the norm scale.
    const int64_t words = matmul_norm_input_words(k);
    std::vector<uint32_t> xq(static_cast<size_t>(n * words));
    quantize_norm_input(x.data(), n, k, xq.data());
    const Allocation xa = upload(ctx, x), pa = upload(ctx, pos, sizeof(pos));
    const Allocation xqa = upload(ctx, xq.data(), xq.size() * 4), sa = upload(ctx, partials);
    for (bool norm_in : {false, true}) {
        // The input as the kernel multiplies it: rounded to Q8_0 blocks, or the quants times
        // their scale times the norm scale.
        std::vector<float> input = x;
        round_rows(DType::Q8_0, input.data(), n, k);
        if (norm_in) {
            std::vector<float> scale(static_cast<size_t>(n));
            for (int64_t t = 0; t < n; ++t)
                scale[t] = 1.0f / std::sqrt(partials[t] / static_cast<float>(k) + eps);
            input = dequantize_norm_input(xq.data(), n, k, scale);
        }
        // The outputs back to back: queries, keys, values, each [n, width].
        std::vector<double> want(static_cast<size_t>(n * m)), tol(want.size());
        std::vector<double> keys(static_cast<size_t>(n * kvd));
        std::vector<float> values(static_cast<size_t>(n * kvd));
        for (int64_t t = 0; t < n; ++t) {
            for (int64_t r = 0; r < m; r += 2) {
                double a = 0, b = 0, magnitude = 0;
                for (int64_t i = 0; i < k; ++i) {
                    a += double(w[static_cast<size_t>(r * k + i)]) * input[t * k + i];
                    b += double(w[static_cast<size_t>((r + 1) * k + i)]) * input[t * k + i];
                    magnitude +=
                        std::fabs(w[static_cast<size_t>(r * k + i)] * input[t * k + i]) +
                        std::fabs(w[static_cast<size_t>((r + 1) * k + i)] * input[t * k + i]);
                }
                const int part = r < qd ? 0 : r < qd + kvd ? 1 : 2;
                const int64_t width = part == 0 ? qd : kvd;
                const int64_t in_part = r - (part == 0 ? 0 : part == 1 ? qd : qd + kvd);
                if (part < 2) {
                    float theta = static_cast<float>(pos[t]);
                    for (int64_t i = 0; i < in_part % hd / 2; ++i) theta *= theta_scale;
                    const double c = std::cos(theta), s = std::sin(theta);
                    const double ra = a * c - b * s, rb = a * s + b * c;
                    a = ra;
                    b = rb;
                }
                const size_t at = static_cast<size_t>((part == 0   ? 0
                                                       : part == 1 ? n * qd
                                                                   : n * (qd + kvd)) +
                                                      t * width + in_part);
                want[at] = a;
                want[at + 1] = b;
                // Vulkan's sin and cos promise about 2^-11 absolute.
                tol[at] = tol[at + 1] = 1e-4 * magnitude + 2e-3 * (std::fabs(a) + std::fabs(b));
                if (part == 0) continue;
                const size_t kv = static_cast<size_t>(t * kvd + in_part);
                if (part == 1) {
                    keys[kv] = a;
                    keys[kv + 1] = b;
                } else {
                    values[kv] = static_cast<float>(a);
                    values[kv + 1] = static_cast<float>(b);
                }
            }
        }
        const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(4 * n * m));
        const std::vector<uint32_t> unset(static_cast<size_t>(n_ctx * kvd / 2), 0x7e007e00u);
        const Allocation kc = upload(ctx, unset.data(), unset.size() * 4);
        const Allocation vc = upload(ctx, unset.data(), unset.size() * 4);
        run(ctx, [&](Sequence& seq) {
            MatMulArgs a = matmul_args(type, m, k, n, wa.range(),
                                       norm_in ? xqa.range() : xa.range(), ya.range());
            a.repacked = true;
            a.y_stride = qd;
            a.more_outputs = {{qd, n * qd, kvd}, {qd + kvd, n * (qd + kvd), kvd}};
            if (norm_in) {
                a.norm_in.partials = sa.range();
                a.norm_in.count = 1;
                a.norm_in.eps = eps;
            }
            a.rope.positions = pa.range();
            a.rope.k_cache = kc.range();
            a.rope.v_cache = vc.range();
            a.rope.n_ctx = n_ctx;
            a.rope.head_dim = static_cast<int>(hd);
            record_matmul(ctx, seq, a);
        });
        std::string err = compare(download(ctx, ya, want.size()), want, tol);
        if (err.empty()) err = check_cache_rows(ctx, kc, vc, keys, values, pos, n_ctx);
        if (!err.empty())
            return str_cat("rope and cache store folded", norm_in ? ", from a norm" : "", ": ",
                           err);
    }
    return "";
}

}  // namespace

std::string test_matmul(Context& ctx, DType type) {
    // Rows across several workgroups of every layout, and an odd count (Q4_0's repacked pairs).
    const int64_t m = 301, k = 256;
    const size_t rb = row_bytes(type, k);
    const std::vector<float> wf = random_floats(static_cast<size_t>(m * k), 1);
    std::vector<uint8_t> wq(rb * static_cast<size_t>(m));
    std::vector<float> w(static_cast<size_t>(m * k));
    for (int64_t r = 0; r < m; ++r) {
        quantize_row(type, wf.data() + r * k, wq.data() + static_cast<size_t>(r) * rb, k);
        dequantize_row(type, wq.data() + static_cast<size_t>(r) * rb, w.data() + r * k, k);
    }
    const Allocation wa = upload(ctx, wq.data(), wq.size());
    // The layout the backend multiplies this type with on this device, too (CPU devices repack).
    const bool repacks = matmul_repacks(ctx.props(), type);
    Allocation packed;
    if (repacks) packed = upload_repacked(ctx, type, wq.data(), m, k);
    // Decode, a short prompt, and (where a GPU would use it) a prefill long enough for the
    // tiled GEMM; then the repacked layout, where the device repacks, and the integer
    // dot-product kernel (activations quantized to packed Q8_0 first), where the device has it.
    struct Run {
        int64_t n;
        bool repacked;
        bool int_dot;
    };
    std::vector<Run> runs = {{1, false, false}, {5, false, false}};
    if (!ctx.props().cpu_kernels && matmul_tiles(ctx.props(), k))
        runs.push_back({kTiledMinTokens + 1, false, false});
    if (repacks) runs.insert(runs.end(), {{1, true, false}, {5, true, false}});
    if (matmul_int_dot(ctx.props(), type))
        runs.insert(runs.end(), {{1, false, true}, {5, false, true}});
    for (const auto& [n, repacked, int_dot] : runs) {
        std::vector<float> x =
            random_floats(static_cast<size_t>(n * k), 2 + static_cast<uint64_t>(n));
        const Allocation xa = upload(ctx, x);
        // Half-precision weights multiply activations rounded to their precision; the integer
        // kernels, activations rounded to Q8_0 blocks.
        const bool q8_input = int_dot || matmul_quantizes_input(type, repacked);
        const DType rounding = q8_input ? DType::Q8_0 : type;
        if (q8_input || type == DType::F16 || type == DType::BF16)
            round_rows(rounding, x.data(), n, k);
        // The packed activations the integer kernel reads.
        const Allocation qa =
            int_dot ? ctx.memory().allocate(static_cast<VkDeviceSize>(4 * n * q8_0_packed_words(k)))
                    : Allocation{};
        std::vector<double> want(static_cast<size_t>(n * m)), tol(want.size());
        for (int64_t t = 0; t < n; ++t)
            for (int64_t r = 0; r < m; ++r) {
                double sum = 0, magnitude = 0;
                for (int64_t i = 0; i < k; ++i) {
                    const double p = static_cast<double>(w[static_cast<size_t>(r * k + i)]) *
                                     x[static_cast<size_t>(t * k + i)];
                    sum += p;
                    magnitude += std::fabs(p);
                }
                want[static_cast<size_t>(t * m + r)] = sum;
                tol[static_cast<size_t>(t * m + r)] = 1e-4 * magnitude + 1e-5;
            }
        const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(n * m * 4));
        run(ctx, [&](Sequence& seq) {
            if (int_dot) {
                RoundActivationsArgs r;
                r.format = DType::Q8_0;
                r.packed = true;
                r.rows = n;
                r.cols = k;
                r.x = xa.range();
                r.y = qa.range();
                record_round_activations(ctx, seq, r);
                seq.barrier();
            }
            MatMulArgs a = matmul_args(type, m, k, n, repacked ? packed.range() : wa.range(),
                                       int_dot ? qa.range() : xa.range(), ya.range());
            a.repacked = repacked;
            a.x_packed = int_dot;
            record_matmul(ctx, seq, a);
        });
        const std::string err = compare(download(ctx, ya, want.size()), want, tol);
        if (!err.empty())
            return str_cat(n, " token(s)", repacked ? ", repacked" : "",
                           int_dot ? ", integer dot products" : "", ": ", err);
    }
    if (matmul_gates_pairs(ctx.props(), type))
        if (std::string err = test_gated_matmul(ctx, type, wq, w, k); !err.empty()) return err;
    if (matmul_ropes_pairs(ctx.props(), type))
        if (std::string err = test_folded_rope(ctx, type, wq, w, k); !err.empty()) return err;
    return matmul_folds_norm(ctx.props(), type) ? test_folded_norm(ctx, type, wq, w, k) : "";
}

}  // namespace mllm::vk::self_test

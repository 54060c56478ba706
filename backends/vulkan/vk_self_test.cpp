#include "backends/vulkan/vk_self_test.h"

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>

#include "backends/vulkan/ops/vk_argmax.h"
#include "backends/vulkan/ops/vk_attention.h"
#include "backends/vulkan/ops/vk_elementwise.h"
#include "backends/vulkan/ops/vk_embed.h"
#include "backends/vulkan/ops/vk_kv_store.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_rms_norm.h"
#include "backends/vulkan/ops/vk_rope.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "backends/vulkan/vk_shaders.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quant/quant.h"

namespace mllm::vk {

namespace {

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                  DType::Q4_1, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> random_floats(size_t n, uint64_t seed) {
    std::vector<float> v(n);
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (float& f : v) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        f = static_cast<float>(static_cast<double>(s >> 40) / static_cast<double>(1 << 24) * 2 - 1);
    }
    return v;
}

// `rows` rows of `cols` values rounded in place to `type` (quantized and back), as the CPU
// backend multiplies activations with some weights.
void round_rows(DType type, float* v, int64_t rows, int64_t cols) {
    std::vector<uint8_t> tmp(row_bytes(type, cols));
    for (int64_t r = 0; r < rows; ++r) {
        quantize_row(type, v + r * cols, tmp.data(), cols);
        dequantize_row(type, tmp.data(), v + r * cols, cols);
    }
}

Allocation upload(Context& ctx, const void* data, size_t bytes) {
    Allocation a = ctx.memory().allocate(std::max<size_t>(bytes, 16));
    ctx.write(a, 0, data, bytes);
    return a;
}

Allocation upload(Context& ctx, const std::vector<float>& v) {
    return upload(ctx, v.data(), v.size() * sizeof(float));
}

std::vector<float> download(Context& ctx, const Allocation& a, size_t n) {
    std::vector<float> v(n);
    ctx.read(a, 0, v.data(), n * sizeof(float));
    return v;
}

// Records what `body` records into a fresh sequence and runs it.
template <typename F>
void run(Context& ctx, F&& body) {
    Sequence seq(ctx.device());
    seq.begin();
    body(seq);
    seq.end();
    seq.run();
}

// "" when every |got - want| <= tolerance[i], else where and by how much it is off.
std::string compare(const std::vector<float>& got, const std::vector<double>& want,
                    const std::vector<double>& tolerance) {
    for (size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
        if (!(err <= tolerance[i]))
            return str_cat("element ", i, " is ", got[i], ", expected ", want[i]);
    }
    return "";
}

std::vector<double> tolerance(const std::vector<double>& want, double relative, double absolute) {
    std::vector<double> t(want.size());
    for (size_t i = 0; i < want.size(); ++i) t[i] = relative * std::fabs(want[i]) + absolute;
    return t;
}

// "" when `rounded` holds y's rows rounded to Q8_0 blocks as core/quant rounds them (a kernel
// that rounds its own output for the matmuls after it): floats, or `packed` as
// round_activations packs them (int8 quants, then f32 scales), compared as the floats they
// stand for.
std::string check_rounded(Context& ctx, const Allocation& rounded, const std::vector<float>& y,
                          int64_t rows, int64_t cols, bool packed = false) {
    std::vector<uint8_t> blocks(row_bytes(DType::Q8_0, cols));
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<double> want;
    for (int64_t r = 0; r < rows; ++r) {
        quantize_row(DType::Q8_0, y.data() + r * cols, blocks.data(), cols);
        dequantize_row(DType::Q8_0, blocks.data(), row.data(), cols);
        want.insert(want.end(), row.begin(), row.end());
    }
    std::vector<float> got;
    if (packed) {
        const int64_t words = q8_0_packed_words(cols);
        const std::vector<float> raw = download(ctx, rounded, static_cast<size_t>(rows * words));
        for (int64_t r = 0; r < rows; ++r) {
            const float* w = raw.data() + r * words;
            for (int64_t i = 0; i < cols; ++i) {
                uint32_t word = 0;
                std::memcpy(&word, w + i / 4, 4);
                const auto q = static_cast<int8_t>((word >> (8 * (i % 4))) & 0xffu);
                got.push_back(static_cast<float>(q) * w[cols / 4 + i / 32]);
            }
        }
    } else {
        got = download(ctx, rounded, want.size());
    }
    const std::string err = compare(got, want, tolerance(want, 1e-6, 0));
    return err.empty() ? "" : "rounded copy: " + err;
}

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
    const Allocation weighted = ctx.memory().allocate(static_cast<VkDeviceSize>(4 * n * m));
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
    return matmul_folds_norm(ctx.props(), type) ? test_folded_norm(ctx, type, wq, w, k) : "";
}

std::string test_embed(Context& ctx, DType type) {
    const int64_t rows = 5, cols = 256;
    const size_t rb = row_bytes(type, cols);
    const std::vector<float> f = random_floats(static_cast<size_t>(rows * cols), 3);
    std::vector<uint8_t> table(rb * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r)
        quantize_row(type, f.data() + r * cols, table.data() + static_cast<size_t>(r) * rb, cols);
    const int32_t ids[] = {3, 0, 4, 1};
    std::vector<double> want;
    std::vector<float> row(static_cast<size_t>(cols));
    for (int32_t id : ids) {
        dequantize_row(type, table.data() + static_cast<size_t>(id) * rb, row.data(), cols);
        want.insert(want.end(), row.begin(), row.end());
    }
    const Allocation ta = upload(ctx, table.data(), table.size());
    const Allocation ia = upload(ctx, ids, sizeof(ids));
    const Allocation ya = ctx.memory().allocate(want.size() * 4);
    run(ctx, [&](Sequence& seq) {
        EmbedArgs a;
        a.table_type = type;
        a.cols = cols;
        a.rows = 4;
        a.table = ta.range();
        a.table_rows = rows;
        a.ids = ia.range();
        a.y = ya.range();
        record_embed(ctx, seq, a);
    });
    return compare(download(ctx, ya, want.size()), want, tolerance(want, 0, 1e-6));
}

// Plain, with the residual add fused in front, and each also rounding its output to Q8_0 blocks
// (pipelines of their own): y = norm(x [+ b]) * w, the sum written out, the rounded copy equal
// to the host's rounding of y.
std::string test_rms_norm(Context& ctx) {
    const int64_t rows = 3, cols = 96;
    const float eps = 1e-5f;
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * cols), 4);
    const std::vector<float> b = random_floats(static_cast<size_t>(rows * cols), 12);
    const std::vector<float> w = random_floats(static_cast<size_t>(cols), 5);
    const Allocation xa = upload(ctx, x), ba = upload(ctx, b), wa = upload(ctx, w);
    for (int variant = 0; variant < 4; ++variant) {
        const bool add = variant % 2 == 1, round = variant >= 2;
        std::vector<double> sum(x.size()), want(x.size());
        for (size_t i = 0; i < x.size(); ++i) sum[i] = add ? x[i] + b[i] : x[i];
        for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < cols; ++i) ss += sum[r * cols + i] * sum[r * cols + i];
            const double scale = 1 / std::sqrt(ss / static_cast<double>(cols) + eps);
            for (int64_t i = 0; i < cols; ++i)
                want[static_cast<size_t>(r * cols + i)] =
                    sum[static_cast<size_t>(r * cols + i)] * scale * w[static_cast<size_t>(i)];
        }
        const Allocation ya = ctx.memory().allocate(x.size() * 4);
        const Allocation sa = ctx.memory().allocate(x.size() * 4);
        const Allocation ra = ctx.memory().allocate(x.size() * 4);
        run(ctx, [&](Sequence& seq) {
            RmsNormArgs a;
            if (round) a.rounded = ra.range();
            a.rows = rows;
            a.cols = cols;
            a.eps = eps;
            a.x = xa.range();
            a.w = wa.range();
            a.y = ya.range();
            if (add) {
                a.b = ba.range();
                a.sum = sa.range();
            }
            record_rms_norm(ctx, seq, a);
        });
        const std::vector<float> y = download(ctx, ya, want.size());
        std::string err = compare(y, want, tolerance(want, 1e-5, 1e-6));
        if (err.empty() && add)
            err = compare(download(ctx, sa, sum.size()), sum, tolerance(sum, 1e-7, 0));
        if (err.empty() && round) err = check_rounded(ctx, ra, y, rows, cols);
        if (!err.empty()) return str_cat(add ? "with the add: " : "", err);
    }
    return "";
}

std::string test_elementwise(Context& ctx) {
    const int64_t rows = 3, cols = 64, n = rows * cols;
    const std::vector<float> a = random_floats(static_cast<size_t>(n), 6);
    const std::vector<float> b = random_floats(static_cast<size_t>(n), 7);
    const Allocation aa = upload(ctx, a), ba = upload(ctx, b);
    for (Elementwise op : {Elementwise::Add, Elementwise::Mul, Elementwise::Silu,
                           Elementwise::SwiGlu, Elementwise::Copy}) {
        const bool broadcast = op == Elementwise::Add;  // b's first row, for every row
        std::vector<double> want(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            const double av = a[static_cast<size_t>(i)];
            const double bv = b[static_cast<size_t>(broadcast ? i % cols : i)];
            const double silu = av / (1 + std::exp(-av));
            want[static_cast<size_t>(i)] = op == Elementwise::Add      ? av + bv
                                           : op == Elementwise::Mul    ? av * bv
                                           : op == Elementwise::Silu   ? silu
                                           : op == Elementwise::SwiGlu ? silu * bv
                                                                       : av;
        }
        const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(n * 4));
        run(ctx, [&](Sequence& seq) {
            ElementwiseArgs e;
            e.op = op;
            e.n = n;
            e.cols = cols;
            e.a = aa.range();
            e.b = ba.range();
            e.y = ya.range();
            e.b_broadcast = broadcast;
            record_elementwise(ctx, seq, e);
        });
        const std::string err =
            compare(download(ctx, ya, want.size()), want, tolerance(want, 1e-5, 1e-6));
        if (!err.empty()) return str_cat("op ", static_cast<int>(op), ": ", err);
    }
    // SwiGLU rounding its output for the matmul after it (a pipeline of its own).
    const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(n * 4));
    const Allocation ra = ctx.memory().allocate(static_cast<VkDeviceSize>(n * 4));
    run(ctx, [&](Sequence& seq) {
        ElementwiseArgs e;
        e.op = Elementwise::SwiGlu;
        e.n = n;
        e.cols = cols;
        e.a = aa.range();
        e.b = ba.range();
        e.y = ya.range();
        e.rounded = ra.range();
        record_elementwise(ctx, seq, e);
    });
    return check_rounded(ctx, ra, download(ctx, ya, static_cast<size_t>(n)), rows, cols);
}

// "" when the f16 caches kc and vc (rows of keys.size() / positions halfs) hold the keys and
// values of each row at its position, and rows at no position hold the 0x7e00 (NaN) they were
// filled with.
std::string check_cache_rows(Context& ctx, const Allocation& kc, const Allocation& vc,
                             const std::vector<double>& keys, const std::vector<float>& values,
                             std::span<const int32_t> positions, int64_t n_ctx) {
    const size_t width = keys.size() / positions.size();
    for (int cache = 0; cache < 2; ++cache) {
        std::vector<uint16_t> halfs(static_cast<size_t>(n_ctx) * width);
        ctx.read(cache == 0 ? kc : vc, 0, halfs.data(), halfs.size() * 2);
        for (int64_t row = 0; row < n_ctx; ++row) {
            const auto r = std::find(positions.begin(), positions.end(), row);
            for (size_t i = 0; i < width; ++i) {
                const uint16_t h = halfs[static_cast<size_t>(row) * width + i];
                if (r == positions.end()) {
                    if (h != 0x7e00u) return str_cat("cache row ", row, " was written");
                    continue;
                }
                const size_t at = static_cast<size_t>(r - positions.begin()) * width + i;
                const double want = cache == 0 ? keys[at] : values[at];
                // f16 rounding (2^-11 relative) on top of sin and cos's 2^-11.
                if (!(std::fabs(fp16_to_fp32(h) - want) <= 2e-3 + 1e-3 * std::fabs(want)))
                    return str_cat(cache == 0 ? "key" : "value", " cache row ", row, " element ", i,
                                   " is ", fp16_to_fp32(h), ", expected ", want);
            }
        }
    }
    return "";
}

std::string test_rope(Context& ctx) {
    const int64_t rows = 3;
    const int n_head = 2, hd = 64, width = n_head * hd;
    const int32_t pos[] = {0, 7, 3001};  // far positions exercise the range reduction
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * width), 8);
    const Allocation xa = upload(ctx, x), pa = upload(ctx, pos, sizeof(pos));
    for (graph::RopeMode mode : {graph::RopeMode::Normal, graph::RopeMode::Neox}) {
        std::vector<double> want(x.size());
        const float theta_scale = std::pow(10000.0f, -2.0f / static_cast<float>(hd));
        for (int64_t r = 0; r < rows; ++r) {
            float theta = static_cast<float>(pos[r]);
            for (int i = 0; i < hd / 2; ++i, theta *= theta_scale) {
                for (int h = 0; h < n_head; ++h) {
                    const int64_t base = r * width + h * hd;
                    const int64_t ia = base + (mode == graph::RopeMode::Normal ? 2 * i : i);
                    const int64_t ib =
                        base + (mode == graph::RopeMode::Normal ? 2 * i + 1 : i + hd / 2);
                    const double x0 = x[static_cast<size_t>(ia)], x1 = x[static_cast<size_t>(ib)];
                    want[static_cast<size_t>(ia)] = x0 * std::cos(theta) - x1 * std::sin(theta);
                    want[static_cast<size_t>(ib)] = x0 * std::sin(theta) + x1 * std::cos(theta);
                }
            }
        }
        // Alone, paired with a second tensor (the keys beside the queries; here x again), and
        // paired storing the keys and values (x again) into f16 caches of n_ctx rows.
        const int64_t n_ctx = 16;  // position 3001 is outside: its row is not stored
        for (int variant = 0; variant < 3; ++variant) {
            const bool pair = variant >= 1, store = variant == 2;
            const Allocation ya = ctx.memory().allocate(x.size() * 4);
            const Allocation y2a = ctx.memory().allocate(x.size() * 4);
            const std::vector<uint32_t> unset(static_cast<size_t>(n_ctx * width / 2), 0x7e007e00u);
            const Allocation kc = upload(ctx, unset.data(), unset.size() * 4);
            const Allocation vc = upload(ctx, unset.data(), unset.size() * 4);
            run(ctx, [&](Sequence& seq) {
                RopeArgs a;
                a.rows = rows;
                a.n_head = n_head;
                a.head_dim = hd;
                a.mode = mode;
                a.x = xa.range();
                a.positions = pa.range();
                a.y = ya.range();
                if (pair) {
                    a.n_head2 = n_head;
                    a.x2 = xa.range();
                    a.y2 = y2a.range();
                }
                if (store) {
                    a.v = xa.range();
                    a.k_cache = kc.range();
                    a.v_cache = vc.range();
                    a.n_ctx = n_ctx;
                }
                record_rope(ctx, seq, a);
            });
            // Vulkan's sin and cos promise about 2^-11 absolute.
            std::string err =
                compare(download(ctx, ya, want.size()), want, tolerance(want, 0, 2e-3));
            if (err.empty() && pair)
                err = compare(download(ctx, y2a, want.size()), want, tolerance(want, 0, 2e-3));
            if (err.empty() && store) err = check_cache_rows(ctx, kc, vc, want, x, pos, n_ctx);
            if (!err.empty())
                return str_cat(mode == graph::RopeMode::Normal ? "normal" : "neox",
                               store  ? " pair storing keys and values"
                               : pair ? " pair"
                                      : "",
                               ": ", err);
        }
    }
    return "";
}

// Rows over more columns than a workgroup has threads, with a tie for the maximum (the lower
// column must win) and NaN (never wins) planted.
std::string test_argmax(Context& ctx) {
    const int64_t rows = 3, cols = 1001;
    std::vector<float> x = random_floats(static_cast<size_t>(rows * cols), 11);
    x[7] = x[900] = 5.0f;         // row 0: a tie
    x[cols + 3] = std::nanf("");  // row 1: NaN beside the maximum
    x[cols + 4] = 4.0f;
    x[2 * cols + cols - 1] = 6.0f;  // row 2: the last column
    std::vector<int32_t> want(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        int64_t best = 0;
        for (int64_t i = 1; i < cols; ++i)
            if (x[static_cast<size_t>(r * cols + i)] > x[static_cast<size_t>(r * cols + best)])
                best = i;
        want[static_cast<size_t>(r)] = static_cast<int32_t>(best);
    }
    const Allocation xa = upload(ctx, x);
    const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(rows * 4));
    run(ctx, [&](Sequence& seq) {
        ArgmaxArgs a;
        a.rows = rows;
        a.cols = cols;
        a.x = xa.range();
        a.y = ya.range();
        record_argmax(ctx, seq, a);
    });
    std::vector<int32_t> got(static_cast<size_t>(rows));
    ctx.read(ya, 0, got.data(), got.size() * sizeof(int32_t));
    for (size_t r = 0; r < got.size(); ++r)
        if (got[r] != want[r])
            return str_cat("row ", r, ": column ", got[r], ", expected ", want[r]);
    return "";
}

// kv_store then attention: 3 tokens at positions 0..2, 4 query heads over 2 KV heads of 64.
std::string test_attention(Context& ctx) {
    const int64_t rows = 3, n_ctx = 8;
    const int n_head = 4, n_head_kv = 2, hd = 64;
    const int64_t qw = n_head * hd, kw = n_head_kv * hd;
    const float scale = 1.0f / 8.0f;
    const int32_t pos[] = {0, 1, 2};
    const std::vector<float> q = random_floats(static_cast<size_t>(rows * qw), 9);
    const std::vector<float> k = random_floats(static_cast<size_t>(rows * kw), 10);
    const std::vector<float> v = random_floats(static_cast<size_t>(rows * kw), 11);
    auto half = [](float f) { return static_cast<double>(fp16_to_fp32(fp32_to_fp16(f))); };
    std::vector<double> want(q.size());
    for (int64_t t = 0; t < rows; ++t)
        for (int h = 0; h < n_head; ++h) {
            const int64_t kv = (h / (n_head / n_head_kv)) * hd;
            std::vector<double> s(static_cast<size_t>(t + 1));
            for (int64_t j = 0; j <= t; ++j) {
                double dot = 0;
                for (int d = 0; d < hd; ++d)
                    dot += q[static_cast<size_t>(t * qw + h * hd + d)] *
                           half(k[static_cast<size_t>(j * kw + kv + d)]);
                s[static_cast<size_t>(j)] = dot * scale;
            }
            const double mx = *std::max_element(s.begin(), s.end());
            double sum = 0;
            for (double& e : s) sum += (e = std::exp(e - mx));
            for (int d = 0; d < hd; ++d) {
                double o = 0;
                for (int64_t j = 0; j <= t; ++j)
                    o += s[static_cast<size_t>(j)] / sum *
                         half(v[static_cast<size_t>(j * kw + kv + d)]);
                want[static_cast<size_t>(t * qw + h * hd + d)] = o;
            }
        }
    const Allocation qa = upload(ctx, q), ka = upload(ctx, k), va = upload(ctx, v);
    const Allocation pa = upload(ctx, pos, sizeof(pos));
    const Allocation kc = ctx.memory().allocate(static_cast<VkDeviceSize>(2 * n_ctx * kw));
    const Allocation vc = ctx.memory().allocate(static_cast<VkDeviceSize>(2 * n_ctx * kw));
    const Allocation ya = ctx.memory().allocate(q.size() * 4);
    // Where the device's kernel can, its output also rounded for the matmul after it, as that
    // matmul takes it (packed for the integer dot-product kernel).
    const bool packed = matmul_int_dot(ctx.props(), DType::Q8_0);
    const bool round = attention_rounds(ctx.props(), hd, packed);
    const Allocation ra = ctx.memory().allocate(q.size() * 4);
    run(ctx, [&](Sequence& seq) {
        KvStoreArgs s;
        s.rows = rows;
        s.width = kw;
        s.n_ctx = n_ctx;
        s.k = ka.range();
        s.v = va.range();
        s.positions = pa.range();
        s.k_cache = kc.range();
        s.v_cache = vc.range();
        record_kv_store(ctx, seq, s);
        seq.barrier();
        AttentionArgs a;
        a.rows = rows;
        a.n_head = n_head;
        a.n_head_kv = n_head_kv;
        a.head_dim = hd;
        a.n_ctx = n_ctx;
        a.scale = scale;
        a.q = qa.range();
        a.positions = pa.range();
        a.k_cache = kc.range();
        a.v_cache = vc.range();
        a.out = ya.range();
        if (round) a.rounded = ra.range();
        a.round_packed = packed;
        record_attention(ctx, seq, a);
    });
    const std::vector<float> y = download(ctx, ya, want.size());
    const std::string err = compare(y, want, tolerance(want, 1e-4, 1e-5));
    return err.empty() && round ? check_rounded(ctx, ra, y, rows, qw, packed) : err;
}

std::string test_round_activations(Context& ctx) {
    const int64_t rows = 2, cols = 256;
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * cols), 12);
    const Allocation xa = upload(ctx, x);
    for (DType format : {DType::Q8_0, DType::Q8_K}) {
        std::vector<double> want;
        std::vector<uint8_t> blocks(row_bytes(format, cols));
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
            quantize_row(format, x.data() + r * cols, blocks.data(), cols);
            dequantize_row(format, blocks.data(), row.data(), cols);
            want.insert(want.end(), row.begin(), row.end());
        }
        const Allocation ya = ctx.memory().allocate(x.size() * 4);
        run(ctx, [&](Sequence& seq) {
            RoundActivationsArgs a;
            a.format = format;
            a.rows = rows;
            a.cols = cols;
            a.x = xa.range();
            a.y = ya.range();
            record_round_activations(ctx, seq, a);
        });
        const std::string err =
            compare(download(ctx, ya, want.size()), want, tolerance(want, 1e-6, 1e-7));
        if (!err.empty()) return str_cat(dtype_name(format), ": ", err);
    }
    return "";
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Changes whenever any embedded shader does, so a rebuilt backend tests itself again.
uint64_t shader_hash() {
    uint64_t h = 1469598103934665603ULL;
    for (const SpirvModule& m : embedded_shaders())
        for (size_t i = 0; i < m.word_count; ++i) h = (h ^ m.words[i]) * 1099511628211ULL;
    return h;
}

}  // namespace

std::string matmul_family(DType t) {
    return "matmul_" + lower(dtype_name(t));
}

std::string embed_family(DType t) {
    return "embed_" + lower(dtype_name(t));
}

std::vector<std::string> self_test_families() {
    std::vector<std::string> f;
    for (DType t : kWeightTypes) f.push_back(matmul_family(t));
    for (DType t : kWeightTypes) f.push_back(embed_family(t));
    for (const char* name :
         {"round_activations", "rms_norm", "elementwise", "rope", "attention", "argmax"})
        f.emplace_back(name);
    return f;
}

SelfTestResult run_self_test(Context& ctx, const std::string& family) {
    SelfTestResult r{family, false, ""};
    try {
        std::string err = "unknown pipeline family";
        for (DType t : kWeightTypes) {
            if (family == matmul_family(t)) err = test_matmul(ctx, t);
            if (family == embed_family(t)) err = test_embed(ctx, t);
        }
        if (family == "round_activations") err = test_round_activations(ctx);
        if (family == "rms_norm") err = test_rms_norm(ctx);
        if (family == "elementwise") err = test_elementwise(ctx);
        if (family == "rope") err = test_rope(ctx);
        if (family == "attention") err = test_attention(ctx);
        if (family == "argmax") err = test_argmax(ctx);
        r.ok = err.empty();
        r.detail = err;
    } catch (const Error& e) {
        r.detail = e.what();
    }
    return r;
}

SelfTestCache::SelfTestCache(const DeviceProps& d) {
    if (std::getenv("MLLM_VK_CORRUPT") != nullptr) return;  // a test run: trust nothing stored
    std::ostringstream what;
    // The features turned off choose the kernels' variants: results hold for one set of them.
    what << "self-test-" << std::hex << shader_hash() << "-" << d.features_off
         << (d.cpu_kernels ? "-cpu" : "-gpu") << ".txt";
    path_ = device_cache_path(d, what.str());
    if (path_.empty()) return;
    std::ifstream in(path_);
    std::string family, verdict;
    while (in >> family >> verdict) {
        std::string detail;
        std::getline(in, detail);
        results_[family] = {family, verdict == "ok", detail.empty() ? "" : detail.substr(1)};
    }
}

const SelfTestResult& SelfTestCache::get(Context& ctx, const std::string& family) {
    auto it = results_.find(family);
    if (it != results_.end()) return it->second;
    const SelfTestResult& r = results_[family] = run_self_test(ctx, family);
    save();
    return r;
}

void SelfTestCache::save() const {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    // Written whole to a temporary file and renamed, so concurrent processes never read half.
    const std::string tmp = str_cat(path_, ".", ::getpid());
    {
        std::ofstream out(tmp);
        for (const auto& [family, r] : results_)
            out << family << (r.ok ? " ok" : " fail") << (r.detail.empty() ? "" : " " + r.detail)
                << "\n";
        if (!out) return;  // an unwritable cache only costs a re-test next time
    }
    std::filesystem::rename(tmp, path_, ec);
}

}  // namespace mllm::vk

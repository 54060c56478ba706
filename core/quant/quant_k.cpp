// The K formats: 256-element super-blocks whose sub-block scales are themselves quantized
// against one fp16 super-block scale. Quantization follows ggml's quantize_row_q{4,5,6}_K_ref
// (the path llama-quantize takes without an importance matrix) operation for operation, so
// the bytes match llama.cpp's files exactly; dequantization follows dequantize_row_*.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "core/quant/blocks.h"
#include "core/quant/quant_impl.h"

// See quant_impl.h: no fused multiply-add, so every product is rounded as in ggml.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace mllm::quant_detail {
namespace {

// ggml treats a group whose largest magnitude is below this as all zeros.
constexpr float kGroupMaxEps = 1e-15f;

// Asymmetric fit of n values to levels 0..nmax as x ~ scale * l - min_out, minimising the
// weighted squared error (ggml's make_qkx2_quants without the mean-absolute option). It starts
// from the plain min/max grid, then tries nstep + 1 grids with nmax + rmin + rdelta * is steps
// across the range; for each it solves the weighted least squares for scale and offset in
// closed form and keeps the best. The offset is never positive (the min is clamped to 0), so
// *min_out >= 0. levels receives the chosen levels; scratch is n bytes of work space.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* levels,
                    float* min_out, uint8_t* scratch, float rmin, float rdelta, int nstep) {
    float min = x[0];
    float max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        std::fill(levels, levels + n, uint8_t{0});
        *min_out = -min;
        return 0.0f;
    }

    float iscale = static_cast<float>(nmax) / (max - min);
    float scale = 1.0f / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; ++i) {
        const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
        levels[i] = static_cast<uint8_t>(l);
        const float diff = scale * static_cast<float>(l) + min - x[i];
        best_error += w[i] * (diff * diff);
    }

    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
        float sum_l = 0.0f;
        float sum_l2 = 0.0f;
        float sum_xl = 0.0f;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            scratch[i] = static_cast<uint8_t>(l);
            const float wl = w[i] * static_cast<float>(l);
            sum_l += wl;
            sum_l2 += wl * static_cast<float>(l);
            sum_xl += wl * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.0f)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0.0f) {
            // An offset above zero would need negative levels: refit the scale alone.
            this_min = 0.0f;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0.0f;
        for (int i = 0; i < n; ++i) {
            const float diff = this_scale * static_cast<float>(scratch[i]) + this_min - x[i];
            error += w[i] * (diff * diff);
        }
        if (error < best_error) {
            std::copy(scratch, scratch + n, levels);
            best_error = error;
            scale = this_scale;
            min = this_min;
        }
    }
    *min_out = -min;
    return scale;
}

// Symmetric fit of n values to levels -nmax..nmax-1 as x ~ scale * l, weighting each element
// by x^2 (ggml's make_qx_quants with rmse_type 1 and no importance weights). The first grid
// maps the largest-magnitude element to -nmax; 18 nearby grids are tried and the one with the
// best least-squares scale kept. levels receives l + nmax (0..2*nmax-1).
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* levels) {
    float max = 0.0f;
    float amax = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::fill(levels, levels + n, int8_t{0});
        return 0.0f;
    }
    const auto level_of = [nmax](float v) { return std::clamp(nearest_int(v), -nmax, nmax - 1); };

    float iscale = static_cast<float>(-nmax) / max;
    float sum_lx = 0.0f;
    float sum_l2 = 0.0f;
    for (int i = 0; i < n; ++i) {
        const int l = level_of(iscale * x[i]);
        levels[i] = static_cast<int8_t>(l + nmax);
        const float w = x[i] * x[i];
        sum_lx += w * x[i] * static_cast<float>(l);
        sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    float scale = sum_l2 != 0.0f ? sum_lx / sum_l2 : 0.0f;
    float best = scale * sum_lx;

    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
        sum_lx = 0.0f;
        sum_l2 = 0.0f;
        for (int i = 0; i < n; ++i) {
            const int l = level_of(iscale * x[i]);
            const float w = x[i] * x[i];
            sum_lx += w * x[i] * static_cast<float>(l);
            sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
        }
        // sum_lx^2 / sum_l2 is the error reduction of the least-squares scale for this grid.
        if (sum_l2 > 0.0f && sum_lx * sum_lx > best * sum_l2) {
            for (int i = 0; i < n; ++i)
                levels[i] = static_cast<int8_t>(level_of(iscale * x[i]) + nmax);
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    return scale;
}

// The 12 scale bytes of Q4_K / Q5_K hold eight 6-bit scales and eight 6-bit mins: sub-blocks
// 0..3 use the low 6 bits of bytes 0..3 (scale) and 4..7 (min); sub-blocks 4..7 keep their low
// nibbles in bytes 8..11 and their top 2 bits in the spare high bits of bytes 0..7.
void pack_scale_mins(const uint8_t* sc, const uint8_t* m, uint8_t* out) {
    for (int j = 0; j < 4; ++j) {
        out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
        out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
    }
}

void unpack_scale_min(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Shared by Q4_K and Q5_K: fits each 32-element sub-block, quantizes the scales and mins to
// 6 bits against the super-block's largest, writes d / dmin / scales, and returns the final
// levels in L (recomputed against the rounded scales, as the dequantizer will see them).
struct KParams {
    int nmax;
    float rmin;
    float rdelta;
    int nstep;
};

void quantize_scale_min_superblock(const float* x, const KParams& p, uint16_t& d_out,
                                   uint16_t& dmin_out, uint8_t* scales_out, uint8_t* L) {
    constexpr int kSub = kQK_K / 32;
    float scales[kSub];
    float mins[kSub];
    float weights[32];
    uint8_t scratch[32];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int j = 0; j < kSub; ++j) {
        const float* xs = x + 32 * j;
        // Weights favour large elements over the sub-block's RMS level.
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
        const float av_x = std::sqrt(sum_x2 / 32.0f);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
        scales[j] = fit_scale_min(32, p.nmax, xs, weights, L + 32 * j, &mins[j], scratch, p.rmin,
                                  p.rdelta, p.nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }

    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    uint8_t ls[kSub];
    uint8_t lm[kSub];
    for (int j = 0; j < kSub; ++j) {
        // ggml stores the rounded value in a uint8_t before capping at 63; keep that wrap.
        ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
        lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    }
    pack_scale_mins(ls, lm, scales_out);
    d_out = fp32_to_fp16(max_scale / 63.0f);
    dmin_out = fp32_to_fp16(max_min / 63.0f);

    // Requantize against the stored (rounded) scales. A sub-block whose scale rounded to zero
    // keeps the levels of its fit: they decode to -dmin * m whatever they are.
    const float d_super = fp16_to_fp32(d_out);
    const float dmin_super = fp16_to_fp32(dmin_out);
    for (int j = 0; j < kSub; ++j) {
        uint8_t sc = 0;
        uint8_t m = 0;
        unpack_scale_min(j, scales_out, sc, m);
        const float d = d_super * static_cast<float>(sc);
        if (d == 0.0f) continue;
        const float dm = dmin_super * static_cast<float>(m);
        for (int i = 0; i < 32; ++i) {
            const int l = nearest_int((x[32 * j + i] + dm) / d);
            L[32 * j + i] = static_cast<uint8_t>(std::clamp(l, 0, p.nmax));
        }
    }
}

}  // namespace

// Q4_K: 8 sub-blocks of 32, x = d * sc * q - dmin * m with q in 0..15. qs holds 64 elements
// per 32 bytes: element i of each 64-run in the low nibble of byte i, element i + 32 in the high.
void quantize_q4_k(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ4_K*>(y);
    uint8_t L[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        BlockQ4_K& out = blocks[b];
        quantize_scale_min_superblock(x, {15, -1.0f, 0.1f, 20}, out.d, out.dmin, out.scales, L);
        for (int j = 0; j < kQK_K / 64; ++j) {
            for (int l = 0; l < 32; ++l)
                out.qs[32 * j + l] =
                    static_cast<uint8_t>(L[64 * j + l] | (L[64 * j + l + 32] << 4));
        }
    }
}

void dequantize_q4_k(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_K*>(x);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const BlockQ4_K& in = blocks[b];
        const float d = fp16_to_fp32(in.d);
        const float dmin = fp16_to_fp32(in.dmin);
        const uint8_t* q = in.qs;
        for (int j = 0; j < kQK_K / 64; ++j, q += 32) {
            uint8_t sc = 0;
            uint8_t m = 0;
            unpack_scale_min(2 * j, in.scales, sc, m);
            const float d1 = d * static_cast<float>(sc);
            const float m1 = dmin * static_cast<float>(m);
            unpack_scale_min(2 * j + 1, in.scales, sc, m);
            const float d2 = d * static_cast<float>(sc);
            const float m2 = dmin * static_cast<float>(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        }
    }
}

// Q5_K: Q4_K with a fifth bit per element; qh bit 2k of byte i is the top bit of element i of
// 64-run k, bit 2k+1 that of element i + 32.
void quantize_q5_k(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ5_K*>(y);
    uint8_t L[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        BlockQ5_K& out = blocks[b];
        quantize_scale_min_superblock(x, {31, -0.5f, 0.1f, 15}, out.d, out.dmin, out.scales, L);
        std::memset(out.qh, 0, sizeof(out.qh));
        for (int j = 0; j < kQK_K / 64; ++j) {
            for (int l = 0; l < 32; ++l) {
                const int lo = L[64 * j + l];
                const int hi = L[64 * j + l + 32];
                out.qs[32 * j + l] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
                out.qh[l] |=
                    static_cast<uint8_t>(((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1)));
            }
        }
    }
}

void dequantize_q5_k(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ5_K*>(x);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const BlockQ5_K& in = blocks[b];
        const float d = fp16_to_fp32(in.d);
        const float dmin = fp16_to_fp32(in.dmin);
        const uint8_t* q = in.qs;
        for (int j = 0; j < kQK_K / 64; ++j, q += 32) {
            uint8_t sc = 0;
            uint8_t m = 0;
            unpack_scale_min(2 * j, in.scales, sc, m);
            const float d1 = d * static_cast<float>(sc);
            const float m1 = dmin * static_cast<float>(m);
            unpack_scale_min(2 * j + 1, in.scales, sc, m);
            const float d2 = d * static_cast<float>(sc);
            const float m2 = dmin * static_cast<float>(m);
            const int bit_lo = 2 * j;
            const int bit_hi = 2 * j + 1;
            for (int l = 0; l < 32; ++l) {
                const int v = (q[l] & 0x0f) | (((in.qh[l] >> bit_lo) & 1) << 4);
                *y++ = d1 * static_cast<float>(v) - m1;
            }
            for (int l = 0; l < 32; ++l) {
                const int v = (q[l] >> 4) | (((in.qh[l] >> bit_hi) & 1) << 4);
                *y++ = d2 * static_cast<float>(v) - m2;
            }
        }
    }
}

// Q6_K: 16 sub-blocks of 16, x = d * scales[i] * (q - 32), scales int8, q 6 bits. Per 128
// elements: ql holds the low nibbles (elements 0..31 | 64..95 in bytes 0..31, 32..63 | 96..127
// in bytes 32..63), qh the top 2 bits of elements l, l+32, l+64, l+96 in byte l.
void quantize_q6_k(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ6_K*>(y);
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        BlockQ6_K& out = blocks[b];
        float max_scale = 0.0f;
        float max_abs_scale = 0.0f;
        for (int ib = 0; ib < kQK_K / 16; ++ib) {
            scales[ib] = fit_scale_symmetric(16, 32, x + 16 * ib, L + 16 * ib);
            if (std::fabs(scales[ib]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&out, 0, sizeof(out));
            continue;
        }

        // The largest scale maps to -128 so the int8 scales use their full range.
        const float iscale = -128.0f / max_scale;
        out.d = fp32_to_fp16(1.0f / iscale);
        for (int ib = 0; ib < kQK_K / 16; ++ib)
            out.scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));

        // Requantize against the stored scales; a zero scale keeps the levels of its fit.
        const float d_super = fp16_to_fp32(out.d);
        for (int ib = 0; ib < kQK_K / 16; ++ib) {
            const float d = d_super * static_cast<float>(out.scales[ib]);
            if (d == 0.0f) continue;
            for (int i = 0; i < 16; ++i) {
                const int l = std::clamp(nearest_int(x[16 * ib + i] / d), -32, 31);
                L[16 * ib + i] = static_cast<int8_t>(l + 32);
            }
        }

        for (int h = 0; h < kQK_K / 128; ++h) {
            const int8_t* Lh = L + 128 * h;
            uint8_t* ql = out.ql + 64 * h;
            uint8_t* qh = out.qh + 32 * h;
            for (int l = 0; l < 32; ++l) {
                const int q0 = Lh[l];
                const int q1 = Lh[l + 32];
                const int q2 = Lh[l + 64];
                const int q3 = Lh[l + 96];
                ql[l] = static_cast<uint8_t>((q0 & 0x0f) | ((q2 & 0x0f) << 4));
                ql[l + 32] = static_cast<uint8_t>((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                qh[l] = static_cast<uint8_t>((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) |
                                             ((q3 >> 4) << 6));
            }
        }
    }
}

void dequantize_q6_k(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ6_K*>(x);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const BlockQ6_K& in = blocks[b];
        const float d = fp16_to_fp32(in.d);
        for (int h = 0; h < kQK_K / 128; ++h, y += 128) {
            const uint8_t* ql = in.ql + 64 * h;
            const uint8_t* qh = in.qh + 32 * h;
            const int8_t* sc = in.scales + 8 * h;
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q0 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                // (d * scale) first, then the level: ggml's association.
                y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q0);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q1);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q2);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q3);
            }
        }
    }
}

// Q8_K (activations): the largest-magnitude element maps to -127, levels rounded to nearest
// even; bsums holds the sum of each 16 levels for the K-format dot products' min terms.
void quantize_q8_k(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ8_K*>(y);
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        BlockQ8_K& out = blocks[b];
        float max = 0.0f;
        float amax = 0.0f;
        for (int j = 0; j < kQK_K; ++j) {
            if (std::fabs(x[j]) > amax) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            // ggml leaves bsums untouched here; zero them so the block is fully defined.
            std::memset(&out, 0, sizeof(out));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < kQK_K; ++j)
            out.qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
        for (int g = 0; g < kQK_K / 16; ++g) {
            int sum = 0;
            for (int i = 0; i < 16; ++i) sum += out.qs[16 * g + i];
            out.bsums[g] = static_cast<int16_t>(sum);
        }
        out.d = 1.0f / iscale;
    }
}

void dequantize_q8_k(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ8_K*>(x);
    for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
        for (int j = 0; j < kQK_K; ++j) y[j] = blocks[b].d * static_cast<float>(blocks[b].qs[j]);
    }
}

}  // namespace mllm::quant_detail

// Portable kernels: the fallback for CPUs without a SIMD path, and the plain statement of what
// every SIMD kernel computes. Each weight block is dotted with its activation block in integers
// (the exact sums the SIMD kernels also form), then scaled in float. Rows and tokens are visited
// one pair at a time; nothing here is tuned.
#include <cstring>

#include "backends/cpu/kernels/quant_matmul.h"
#include "core/fp16.h"
#include "core/quant/blocks.h"

namespace mllm::cpu::detail {
namespace {

// ---- Q8_0 activations: weights in blocks of 32 with one fp16 scale -------------------------

// Quantized weight values of one block, in element order (offset not yet removed).
void unpack_nibbles(const uint8_t* qs, int q[kQK]) {
    for (int j = 0; j < kQK / 2; ++j) {
        q[j] = qs[j] & 0x0f;
        q[j + kQK / 2] = qs[j] >> 4;
    }
}

int dot32(const int q[kQK], const int8_t* a) {
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += q[j] * a[j];
    return sum;
}

int sum32(const int8_t* a) {
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += a[j];
    return sum;
}

float dot_q4_0(const void* wrow, const BlockQ8_0* a, int64_t nb) {
    const auto* w = static_cast<const BlockQ4_0*>(wrow);
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int q[kQK];
        unpack_nibbles(w[b].qs, q);
        // sum (q - 8) * a = sum q * a - 8 * sum a
        const int isum = dot32(q, a[b].qs) - 8 * sum32(a[b].qs);
        sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum);
    }
    return sum;
}

float dot_q4_1(const void* wrow, const BlockQ8_0* a, int64_t nb) {
    const auto* w = static_cast<const BlockQ4_1*>(wrow);
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int q[kQK];
        unpack_nibbles(w[b].qs, q);
        const float da = fp16_to_fp32(a[b].d);
        // x = d * q + m: sum x * a = d * sum q * a + m * sum a
        sum += fp16_to_fp32(w[b].d) * da * static_cast<float>(dot32(q, a[b].qs));
        sum += fp16_to_fp32(w[b].m) * da * static_cast<float>(sum32(a[b].qs));
    }
    return sum;
}

float dot_q5_0(const void* wrow, const BlockQ8_0* a, int64_t nb) {
    const auto* w = static_cast<const BlockQ5_0*>(wrow);
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int q[kQK];
        unpack_nibbles(w[b].qs, q);
        uint32_t qh;
        std::memcpy(&qh, w[b].qh, sizeof(qh));
        for (int j = 0; j < kQK; ++j) q[j] |= static_cast<int>((qh >> j) & 1u) << 4;
        const int isum = dot32(q, a[b].qs) - 16 * sum32(a[b].qs);
        sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum);
    }
    return sum;
}

float dot_q8_0(const void* wrow, const BlockQ8_0* a, int64_t nb) {
    const auto* w = static_cast<const BlockQ8_0*>(wrow);
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int isum = 0;
        for (int j = 0; j < kQK; ++j) isum += w[b].qs[j] * a[b].qs[j];
        sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum);
    }
    return sum;
}

// ---- Q8_K activations: super-blocks of 256 --------------------------------------------------
// Every K format here is "x = d * scale_g * q - dmin * min_g" per group g of elements, with q
// unsigned. Against Q8_K activations a (scale da, group sums in bsums) that is
//   da * (d * sum_g scale_g * sum(q * a) - dmin * sum_g min_g * sum(a)).

// The 6-bit scales and mins of Q4_K / Q5_K, one per 32-element sub-block.
void unpack_k_scales(const uint8_t s[kKScaleBytes], int sc[8], int mn[8]) {
    for (int j = 0; j < 4; ++j) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
}

// Q4_K and Q5_K store 64 elements per 32 bytes of qs: the low nibbles are sub-block 2i, the
// high nibbles sub-block 2i+1. Q5_K adds bit (sub-block index) of qh[l] as bit 4 of element l.
float dot_q45_k(const uint8_t* qs, const uint8_t* qh, const uint8_t* scales, float d, float dmin,
                const BlockQ8_K& a) {
    int sc[8], mn[8];
    unpack_k_scales(scales, sc, mn);
    int isum = 0;
    int msum = 0;
    for (int j = 0; j < 8; ++j) {
        const uint8_t* q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        int dot = 0;
        for (int l = 0; l < 32; ++l) {
            int v = (q[l] >> shift) & 0x0f;
            if (qh != nullptr) v |= ((qh[l] >> j) & 1) << 4;
            dot += v * a.qs[32 * j + l];
        }
        isum += sc[j] * dot;
        msum += mn[j] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
    }
    return a.d * (d * static_cast<float>(isum) - dmin * static_cast<float>(msum));
}

float dot_q4_k(const void* wrow, const BlockQ8_K* a, int64_t nb) {
    const auto* w = static_cast<const BlockQ4_K*>(wrow);
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b)
        sum += dot_q45_k(w[b].qs, nullptr, w[b].scales, fp16_to_fp32(w[b].d),
                         fp16_to_fp32(w[b].dmin), a[b]);
    return sum;
}

float dot_q5_k(const void* wrow, const BlockQ8_K* a, int64_t nb) {
    const auto* w = static_cast<const BlockQ5_K*>(wrow);
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b)
        sum += dot_q45_k(w[b].qs, w[b].qh, w[b].scales, fp16_to_fp32(w[b].d),
                         fp16_to_fp32(w[b].dmin), a[b]);
    return sum;
}

// Q6_K: element e of each 128-element half h takes its low 4 bits from ql and its top 2 from
// qh; x = d * scales[e / 16] * (q - 32).
float dot_q6_k(const void* wrow, const BlockQ8_K* a, int64_t nb) {
    const auto* w = static_cast<const BlockQ6_K*>(wrow);
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int q[kQK_K];
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w[b].ql + 64 * h;
            const uint8_t* qh = w[b].qh + 32 * h;
            int* out = q + 128 * h;
            for (int l = 0; l < 32; ++l) {
                out[l] = (ql[l] & 0x0f) | ((qh[l] & 3) << 4);
                out[l + 32] = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
                out[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                out[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            }
        }
        int isum = 0;
        int msum = 0;
        for (int g = 0; g < kQK_K / 16; ++g) {
            int dot = 0;
            for (int l = 0; l < 16; ++l) dot += q[16 * g + l] * a[b].qs[16 * g + l];
            isum += w[b].scales[g] * dot;
            msum += w[b].scales[g] * a[b].bsums[g];
        }
        // sum scale * (q - 32) * a = isum - 32 * msum
        sum += a[b].d * fp16_to_fp32(w[b].d) * static_cast<float>(isum - 32 * msum);
    }
    return sum;
}

// ---- float weights against f32 activations --------------------------------------------------

float dot_f32(const void* wrow, const float* x, int64_t k) {
    const auto* w = static_cast<const float*>(wrow);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i) sum += w[i] * x[i];
    return sum;
}

float dot_f16(const void* wrow, const float* x, int64_t k) {
    const auto* w = static_cast<const uint16_t*>(wrow);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i) sum += fp16_to_fp32(w[i]) * x[i];
    return sum;
}

float dot_bf16(const void* wrow, const float* x, int64_t k) {
    const auto* w = static_cast<const uint16_t*>(wrow);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i) sum += bf16_to_fp32(w[i]) * x[i];
    return sum;
}

// Row-by-token loop around a dot product taking the activation row as `Act` and a count
// (blocks for the quantized formats, elements for the float ones).
template <typename Act>
void run_dots(const MatmulArgs& args, float (*dot)(const void*, const Act*, int64_t),
              int64_t count) {
    for (int64_t t = 0; t < args.n_tokens; ++t) {
        const auto* act = reinterpret_cast<const Act*>(args.act + t * args.act_row_bytes);
        for (int64_t r = args.row_begin; r < args.row_end; ++r)
            args.y[t * args.ldy + r] = dot(args.w + r * args.w_row_bytes, act, count);
    }
}

}  // namespace

void run_scalar_kernel(const MatmulArgs& args) {
    const int64_t nb = args.k / kQK;
    const int64_t nbk = args.k / kQK_K;
    switch (args.weight) {
        case DType::F32:
            return run_dots<float>(args, dot_f32, args.k);
        case DType::F16:
            return run_dots<float>(args, dot_f16, args.k);
        case DType::BF16:
            return run_dots<float>(args, dot_bf16, args.k);
        case DType::Q4_0:
            return run_dots<BlockQ8_0>(args, dot_q4_0, nb);
        case DType::Q4_1:
            return run_dots<BlockQ8_0>(args, dot_q4_1, nb);
        case DType::Q5_0:
            return run_dots<BlockQ8_0>(args, dot_q5_0, nb);
        case DType::Q8_0:
            return run_dots<BlockQ8_0>(args, dot_q8_0, nb);
        case DType::Q4_K:
            return run_dots<BlockQ8_K>(args, dot_q4_k, nbk);
        case DType::Q5_K:
            return run_dots<BlockQ8_K>(args, dot_q5_k, nbk);
        case DType::Q6_K:
            return run_dots<BlockQ8_K>(args, dot_q6_k, nbk);
        default:
            break;
    }
}

}  // namespace mllm::cpu::detail

// Plain float formats and the 32-element block formats (Q4_0, Q4_1, Q5_0, Q8_0), following
// ggml's quantize_row_*_ref and dequantize_row_* operation for operation: the same scale
// choice, the same float expressions in the same order, the same truncating conversions.
#include <algorithm>
#include <cfloat>
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

// The element of largest magnitude, with its sign (the first one on ties), which the symmetric
// formats map to their most negative level so that range is not wasted.
float signed_absmax(const float* x, int n) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

}  // namespace

void f16_from_f32(const float* x, void* y, int64_t n) {
    auto* out = static_cast<uint16_t*>(y);
    for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

void f16_to_f32(const void* x, float* y, int64_t n) {
    const auto* in = static_cast<const uint16_t*>(x);
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(in[i]);
}

void bf16_from_f32(const float* x, void* y, int64_t n) {
    auto* out = static_cast<uint16_t*>(y);
    for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_bf16(x[i]);
}

void bf16_to_f32(const void* x, float* y, int64_t n) {
    const auto* in = static_cast<const uint16_t*>(x);
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(in[i]);
}

// Q4_0: d = max / -8, so the extreme element lands on level 0 (q - 8 = -8) and the opposite
// side keeps 7 steps. Levels are x / d + 8.5 truncated (round half up), capped at 15.
void quantize_q4_0(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ4_0*>(y);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        const float d = signed_absmax(x, kQK) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ4_0& out = blocks[b];
        out.d = fp32_to_fp16(d);
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
            const int hi = std::min(15, static_cast<int>(x[j + kQK / 2] * id + 8.5f));
            out.qs[j] = static_cast<uint8_t>(lo | (hi << 4));
        }
    }
}

void dequantize_q4_0(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_0*>(x);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const float d = fp16_to_fp32(blocks[b].d);
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = static_cast<float>((blocks[b].qs[j] & 0x0f) - 8) * d;
            y[j + kQK / 2] = static_cast<float>((blocks[b].qs[j] >> 4) - 8) * d;
        }
    }
}

// Q4_1: the block's [min, max] split into 15 steps; levels are (x - min) / d rounded half up.
void quantize_q4_1(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ4_1*>(y);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float min = FLT_MAX;
        float max = -FLT_MAX;
        for (int j = 0; j < kQK; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ4_1& out = blocks[b];
        out.d = fp32_to_fp16(d);
        out.m = fp32_to_fp16(min);
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = std::min(15, static_cast<int>((x[j] - min) * id + 0.5f));
            const int hi = std::min(15, static_cast<int>((x[j + kQK / 2] - min) * id + 0.5f));
            out.qs[j] = static_cast<uint8_t>(lo | (hi << 4));
        }
    }
}

void dequantize_q4_1(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_1*>(x);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const float d = fp16_to_fp32(blocks[b].d);
        const float m = fp16_to_fp32(blocks[b].m);
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = static_cast<float>(blocks[b].qs[j] & 0x0f) * d + m;
            y[j + kQK / 2] = static_cast<float>(blocks[b].qs[j] >> 4) * d + m;
        }
    }
}

// Q5_0: as Q4_0 with 32 levels (d = max / -16); bit 4 of element j goes to bit j of qh.
void quantize_q5_0(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ5_0*>(y);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        const float d = signed_absmax(x, kQK) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ5_0& out = blocks[b];
        out.d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = std::min(31, static_cast<int>(x[j] * id + 16.5f));
            const int hi = std::min(31, static_cast<int>(x[j + kQK / 2] * id + 16.5f));
            out.qs[j] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
            qh |= static_cast<uint32_t>(lo >> 4) << j;
            qh |= static_cast<uint32_t>(hi >> 4) << (j + kQK / 2);
        }
        // qh is little-endian in the file whatever the host order.
        for (int k = 0; k < 4; ++k) out.qh[k] = static_cast<uint8_t>(qh >> (8 * k));
    }
}

void dequantize_q5_0(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ5_0*>(x);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const BlockQ5_0& in = blocks[b];
        const float d = fp16_to_fp32(in.d);
        uint32_t qh = 0;
        for (int k = 0; k < 4; ++k) qh |= static_cast<uint32_t>(in.qh[k]) << (8 * k);
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = (in.qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
            const int hi = (in.qs[j] >> 4) | static_cast<int>(((qh >> (j + kQK / 2)) & 1u) << 4);
            y[j] = static_cast<float>(lo - 16) * d;
            y[j + kQK / 2] = static_cast<float>(hi - 16) * d;
        }
    }
}

// Q8_0: d = absmax / 127, levels x / d rounded half away from zero (roundf, as ggml).
void quantize_q8_0(const float* x, void* y, int64_t n) {
    auto* blocks = static_cast<BlockQ8_0*>(y);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float amax = 0.0f;
        for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ8_0& out = blocks[b];
        out.d = fp32_to_fp16(d);
        for (int j = 0; j < kQK; ++j) out.qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    }
}

void dequantize_q8_0(const void* x, float* y, int64_t n) {
    const auto* blocks = static_cast<const BlockQ8_0*>(x);
    for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
        const float d = fp16_to_fp32(blocks[b].d);
        for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(blocks[b].qs[j]) * d;
    }
}

}  // namespace mllm::quant_detail

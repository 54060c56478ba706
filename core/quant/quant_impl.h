#pragma once
// Internal to core/quant: the per-format row converters that quant.h's dispatch calls, and the
// rounding helper they share. Every n is an element count, a multiple of the format's block.
//
// Bit-exactness with ggml needs every float operation rounded on its own and in ggml's order.
// ggml's reference code is built without FMA, but we build with -march=native, where C++ lets
// GCC fuse a*b+c into one FMA (one rounding instead of two). The .cpp files that do the
// arithmetic therefore turn floating-point contraction off right after their includes; helpers
// with float arithmetic must be defined after that point, not in headers.
#include <bit>
#include <cstdint>

namespace mllm::quant_detail {

// Round to nearest, ties to even, exactly like ggml's nearest_int: adding 1.5 * 2^23 leaves no
// fraction bits in the float's mantissa, so the addition itself rounds, and the integer sits in
// the low mantissa bits (valid for |x| < 2^22; callers' values are a few hundred at most).
inline int nearest_int(float x) {
    const float shifted = x + 12582912.0f;
    return static_cast<int>(std::bit_cast<uint32_t>(shifted) & 0x007fffffu) - 0x00400000;
}

// Simple formats (quant_simple.cpp).
void f16_from_f32(const float* x, void* y, int64_t n);
void f16_to_f32(const void* x, float* y, int64_t n);
void bf16_from_f32(const float* x, void* y, int64_t n);
void bf16_to_f32(const void* x, float* y, int64_t n);
void quantize_q4_0(const float* x, void* y, int64_t n);
void dequantize_q4_0(const void* x, float* y, int64_t n);
void quantize_q4_1(const float* x, void* y, int64_t n);
void dequantize_q4_1(const void* x, float* y, int64_t n);
void quantize_q5_0(const float* x, void* y, int64_t n);
void dequantize_q5_0(const void* x, float* y, int64_t n);
void quantize_q8_0(const float* x, void* y, int64_t n);
void dequantize_q8_0(const void* x, float* y, int64_t n);

// K formats (quant_k.cpp).
void quantize_q4_k(const float* x, void* y, int64_t n);
void dequantize_q4_k(const void* x, float* y, int64_t n);
void quantize_q5_k(const float* x, void* y, int64_t n);
void dequantize_q5_k(const void* x, float* y, int64_t n);
void quantize_q6_k(const float* x, void* y, int64_t n);
void dequantize_q6_k(const void* x, float* y, int64_t n);
void quantize_q8_k(const float* x, void* y, int64_t n);
void dequantize_q8_k(const void* x, float* y, int64_t n);

}  // namespace mllm::quant_detail

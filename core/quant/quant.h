#pragma once
// Reference (scalar) conversion between float rows and every weight type, bit-exact with
// ggml's reference implementations (quantize_row_*_ref / dequantize_row_*). These are the
// ground truth that every SIMD and GPU kernel is tested against.
#include <cstdint>

#include "core/dtype.h"

namespace mllm {

// n must be a multiple of the type's block size. Throws mllm::Error for types without a
// conversion (e.g. integer types).
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
void quantize_row(DType type, const float* src, void* dst, int64_t n);

// The format activations take in a dot product with weights of `weight` (ggml's vec_dot_type),
// on every backend: Q8_0 for Q4_0/Q4_1/Q5_0/Q8_0, Q8_K for the K formats, F32 for F16/BF16/F32
// (half-precision weights multiply activations rounded to their own precision). Throws
// mllm::Error for types that are not weights.
DType activation_type(DType weight);

// Activation quantizers used by the integer dot-product kernels (Q8_0 blocks for the simple
// formats, Q8_K super-blocks for the K formats).
void quantize_row_q8_0(const float* src, void* dst, int64_t n);
void quantize_row_q8_k(const float* src, void* dst, int64_t n);

}  // namespace mllm

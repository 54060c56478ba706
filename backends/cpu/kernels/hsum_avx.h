#pragma once
// The horizontal sum of an 8-float AVX vector, for the portable float kernels (attention,
// vec_math) in builds with AVX. The quantized kernels keep their own copy
// (quant_matmul_x86_common.inc), compiled into each instruction set's file on its own.
#if defined(__AVX__)
#include <immintrin.h>

namespace mllm::cpu {
// Internal linkage: each file that includes this gets its own copy, built with its own flags.
namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace mllm::cpu
#endif

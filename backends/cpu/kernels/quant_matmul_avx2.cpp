// The AVX2 build of the x86 kernels (quant_matmul_x86.inc) and the AVX2 activation quantizer.
#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/kernels/quant_matmul.h"
#include "backends/cpu/kernels/quant_matmul_x86.inc"
#include "core/quant/blocks.h"

namespace mllm::cpu::detail {

void quantize_row_q8_0_avx2(const float* x, void* dst, int64_t k) {
    auto* blocks = static_cast<BlockQ8_0*>(dst);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < k / kQK; ++b, x += kQK) {
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < 4; ++i) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            amax = _mm256_max_ps(amax, _mm256_and_ps(v[i], abs_mask));
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        // The reference's scalar expressions, in the same order: d = amax / 127, id = 1 / d.
        const float d = _mm_cvtss_f32(m) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        blocks[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m256i q[4];
        for (int i = 0; i < 4; ++i) {
            // Round half away from zero (std::round) exactly: truncate, then step one away
            // from zero when the dropped fraction (exact in float) is at least one half.
            const __m256 p = _mm256_mul_ps(v[i], _mm256_set1_ps(id));
            const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 frac = _mm256_and_ps(_mm256_sub_ps(p, t), abs_mask);
            const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ),
                                              _mm256_or_ps(one, _mm256_and_ps(p, sign_mask)));
            q[i] = _mm256_cvtps_epi32(_mm256_add_ps(t, step));
        }
        // int32 -> int8; the packs interleave 128-bit halves, the permute restores the order.
        const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
        const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
        const __m256i q8 = _mm256_packs_epi16(q16a, q16b);
        _mm256_storeu_si256(
            reinterpret_cast<__m256i*>(blocks[b].qs),
            _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}
void run_avx2_kernel(const MatmulArgs& args) {
    run_x86_kernel(args);
}

}  // namespace mllm::cpu::detail

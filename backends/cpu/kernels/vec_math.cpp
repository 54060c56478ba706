#include "backends/cpu/kernels/vec_math.h"

#include <cmath>

#include "backends/cpu/kernels/hsum_avx.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(MLLM_HAVE_LIBMVEC_LIB)
#include <immintrin.h>
#define MLLM_HAVE_LIBMVEC 1
extern "C" __m256 _ZGVdN8v_expf(__m256 x);  // glibc libmvec, AVX2 variant of expf
#endif

namespace mllm::cpu {

float exp_shifted_sum(float* x, int64_t n, float shift) {
    int64_t i = 0;
    float sum = 0;
#ifdef MLLM_HAVE_LIBMVEC
    const __m256 s = _mm256_set1_ps(shift);
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    sum = hsum(acc);
#endif
    for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
    return sum;
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
    int64_t i = 0;
#ifdef MLLM_HAVE_LIBMVEC
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = _ZGVdN8v_expf(_mm256_xor_ps(g, sign));  // exp(-g)
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        if (up != nullptr) s = _mm256_mul_ps(s, _mm256_loadu_ps(up + i));
        _mm256_storeu_ps(y + i, s);
    }
#endif
    for (; i < n; ++i) {
        const float s = gate[i] / (1.0f + std::exp(-gate[i]));
        y[i] = up != nullptr ? s * up[i] : s;
    }
}

}  // namespace mllm::cpu

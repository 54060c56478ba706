#include "backends/cpu/kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/kernels/vec_math.h"
#include "core/fp16.h"

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define MLLM_ATTN_AVX2 1
#endif

namespace mllm::cpu {
namespace {

float dot_f32_f16(const float* a, const uint16_t* b, int64_t n) {
    int64_t i = 0;
    float sum = 0;
#ifdef MLLM_ATTN_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 bf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bf, acc);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    sum = _mm_cvtss_f32(s);
#endif
    for (; i < n; ++i) sum += a[i] * fp16_to_fp32(b[i]);
    return sum;
}

// y += p * x
void axpy_f16(float p, const uint16_t* x, float* y, int64_t n) {
    int64_t i = 0;
#ifdef MLLM_ATTN_AVX2
    const __m256 pv = _mm256_set1_ps(p);
    for (; i + 8 <= n; i += 8) {
        const __m256 xf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(pv, xf, _mm256_loadu_ps(y + i)));
    }
#endif
    for (; i < n; ++i) y[i] += p * fp16_to_fp32(x[i]);
}

}  // namespace

void kv_store(const float* k, const float* v, const KvLayer& cache, int64_t n_past,
              int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
        uint16_t* kd = cache.k + (n_past + r) * cache.width;
        uint16_t* vd = cache.v + (n_past + r) * cache.width;
        const float* ks = k + r * cache.width;
        const float* vs = v + r * cache.width;
        for (int64_t i = 0; i < cache.width; ++i) {
            kd[i] = fp32_to_fp16(ks[i]);
            vd[i] = fp32_to_fp16(vs[i]);
        }
    }
}

void attention(const float* q, const KvLayer& cache, float* out, int64_t n_past,
               const graph::Attrs& attrs, int64_t task_begin, int64_t task_end, float* scores) {
    const int hd = attrs.head_dim;
    const int group = attrs.n_head / attrs.n_head_kv;
    const int64_t q_width = static_cast<int64_t>(attrs.n_head) * hd;
    for (int64_t task = task_begin; task < task_end; ++task) {
        const int64_t t = task / attrs.n_head;
        const int h = static_cast<int>(task % attrs.n_head);
        const int64_t kv_off = static_cast<int64_t>(h / group) * hd;
        const float* qh = q + t * q_width + h * hd;
        const int64_t n_keys = n_past + t + 1;  // causal: itself and everything before

        float max_score = -INFINITY;
        for (int64_t j = 0; j < n_keys; ++j) {
            scores[j] = dot_f32_f16(qh, cache.k + j * cache.width + kv_off, hd) * attrs.attn_scale;
            max_score = std::max(max_score, scores[j]);
        }
        for (int64_t j = 0; j < n_keys; ++j) scores[j] -= max_score;
        exp_inplace(scores, n_keys);
        float sum = 0;
        for (int64_t j = 0; j < n_keys; ++j) sum += scores[j];
        float* oh = out + t * q_width + h * hd;
        std::fill(oh, oh + hd, 0.0f);
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < n_keys; ++j)
            axpy_f16(scores[j] * inv, cache.v + j * cache.width + kv_off, oh, hd);
    }
}

}  // namespace mllm::cpu

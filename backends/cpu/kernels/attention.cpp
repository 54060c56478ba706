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

// scores[j] = scale * q . k_j for j in [0, n): four keys at a time, so four independent FMA
// chains hide the FMA latency and one horizontal reduction serves four keys.
void key_scores(const float* q, const uint16_t* k, int64_t stride, int64_t n, int hd, float scale,
                float* scores) {
    int64_t j = 0;
#ifdef MLLM_ATTN_AVX2
    if (hd % 8 == 0) {
        for (; j + 4 <= n; j += 4) {
            const uint16_t* k0 = k + j * stride;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < hd; i += 8) {
                const __m256 qv = _mm256_loadu_ps(q + i);
                auto key = [&](int which) {
                    return _mm256_cvtph_ps(
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(k0 + which * stride + i)));
                };
                a0 = _mm256_fmadd_ps(qv, key(0), a0);
                a1 = _mm256_fmadd_ps(qv, key(1), a1);
                a2 = _mm256_fmadd_ps(qv, key(2), a2);
                a3 = _mm256_fmadd_ps(qv, key(3), a3);
            }
            // Lane sums of a0..a3 into one 4-wide vector.
            const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
            const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            _mm_storeu_ps(scores + j, _mm_mul_ps(sums, _mm_set1_ps(scale)));
        }
    }
#endif
    for (; j < n; ++j) scores[j] = dot_f32_f16(q, k + j * stride, hd) * scale;
}

// out = sum_j p[j] * v_j. 64 output dims at a time stay in eight registers while the keys
// stream past, instead of a load and store of the output per key.
void weighted_values(const float* p, const uint16_t* v, int64_t stride, int64_t n, int hd,
                     float* out) {
    int d = 0;
#ifdef MLLM_ATTN_AVX2
    for (; d + 64 <= hd; d += 64) {
        __m256 acc[8];
        for (auto& a : acc) a = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; ++j) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const uint16_t* vj = v + j * stride + d;
            for (int c = 0; c < 8; ++c)
                acc[c] = _mm256_fmadd_ps(
                    pj,
                    _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vj + 8 * c))),
                    acc[c]);
        }
        for (int c = 0; c < 8; ++c) _mm256_storeu_ps(out + d + 8 * c, acc[c]);
    }
#endif
    if (d == hd) return;
    std::fill(out + d, out + hd, 0.0f);
    for (int64_t j = 0; j < n; ++j) axpy_f16(p[j], v + j * stride + d, out + d, hd - d);
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

        key_scores(qh, cache.k + kv_off, cache.width, n_keys, hd, attrs.attn_scale, scores);
        const float max_score = *std::max_element(scores, scores + n_keys);
        for (int64_t j = 0; j < n_keys; ++j) scores[j] -= max_score;
        exp_inplace(scores, n_keys);
        float sum = 0;
        for (int64_t j = 0; j < n_keys; ++j) sum += scores[j];
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < n_keys; ++j) scores[j] *= inv;
        weighted_values(scores, cache.v + kv_off, cache.width, n_keys, hd,
                        out + t * q_width + h * hd);
    }
}

}  // namespace mllm::cpu

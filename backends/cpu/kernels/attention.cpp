#include "backends/cpu/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/kernels/vec_math.h"
#include "core/fp16.h"

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define MLLM_ATTN_AVX2 1
#endif

namespace mllm::cpu {
namespace {

#ifdef MLLM_ATTN_AVX2
// The sum of the 8 lanes of v.
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Lane i of the result is the sum of the 8 lanes of v[i].
inline __m128 hsum4(const __m256 v[4]) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
#endif

float dot_f32_f16(const float* a, const uint16_t* b, int64_t n) {
    int64_t i = 0;
    float sum = 0;
#ifdef MLLM_ATTN_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 bf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bf, acc);
    }
    sum = hsum(acc);
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

// The kernels below read one KV head's keys k_j and values v_j as rows of hd halfs, one after the
// other (the head-major cache of attention.h).

// scores[j] = scale * q . k_j for j in [0, n): four keys at a time, so four independent FMA
// chains hide the FMA latency and one horizontal reduction serves four keys.
void key_scores(const float* q, const uint16_t* k, int64_t n, int hd, float scale, float* scores) {
    int64_t j = 0;
#ifdef MLLM_ATTN_AVX2
    if (hd % 8 == 0) {
        for (; j + 4 <= n; j += 4) {
            const uint16_t* k0 = k + j * hd;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < hd; i += 8) {
                const __m256 qv = _mm256_loadu_ps(q + i);
                auto key = [&](int which) {
                    return _mm256_cvtph_ps(
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(k0 + which * hd + i)));
                };
                a0 = _mm256_fmadd_ps(qv, key(0), a0);
                a1 = _mm256_fmadd_ps(qv, key(1), a1);
                a2 = _mm256_fmadd_ps(qv, key(2), a2);
                a3 = _mm256_fmadd_ps(qv, key(3), a3);
            }
            const __m256 a[4] = {a0, a1, a2, a3};
            _mm_storeu_ps(scores + j, _mm_mul_ps(hsum4(a), _mm_set1_ps(scale)));
        }
    }
#endif
    for (; j < n; ++j) scores[j] = dot_f32_f16(q, k + j * hd, hd) * scale;
}

// out = sum_j p[j] * v_j. 64 output dims at a time stay in eight registers while the keys
// stream past, instead of a load and store of the output per key.
void weighted_values(const float* p, const uint16_t* v, int64_t n, int hd, float* out) {
    int d = 0;
#ifdef MLLM_ATTN_AVX2
    for (; d + 64 <= hd; d += 64) {
        __m256 acc[8];
        for (auto& a : acc) a = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; ++j) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const uint16_t* vj = v + j * hd + d;
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
    for (int64_t j = 0; j < n; ++j) axpy_f16(p[j], v + j * hd + d, out + d, hd - d);
}

// The query heads that read one KV head (GQA) are computed together, up to kAttentionHeadsPerPass
// at a time, so each f16 key and value row is loaded and converted once for all of them instead
// of once per head (one vcvtph2ps per 8 halfs, as many as the FMAs of a single head).

// scores[h][j] = scale * q[h] . k_j for the NH heads of a pass and keys j in [0, n).
template <int NH>
void pass_key_scores(const float* const q[], const uint16_t* k, int64_t n, int hd, float scale,
                     float* const scores[]) {
    int64_t j = 0;
#ifdef MLLM_ATTN_AVX2
    if (hd % 8 == 0) {
        // Two keys at a time: twice the independent FMA chains, half the loop overhead.
        for (; j + 2 <= n; j += 2) {
            const uint16_t* k0 = k + j * hd;
            const uint16_t* k1 = k0 + hd;
            __m256 acc0[4], acc1[4];
            for (int h = 0; h < 4; ++h) acc0[h] = acc1[h] = _mm256_setzero_ps();
            for (int i = 0; i < hd; i += 8) {
                const __m256 key0 =
                    _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k0 + i)));
                const __m256 key1 =
                    _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k1 + i)));
                for (int h = 0; h < NH; ++h) {
                    const __m256 qv = _mm256_loadu_ps(q[h] + i);
                    acc0[h] = _mm256_fmadd_ps(qv, key0, acc0[h]);
                    acc1[h] = _mm256_fmadd_ps(qv, key1, acc1[h]);
                }
            }
            alignas(16) float sums[2][4];
            _mm_store_ps(sums[0], _mm_mul_ps(hsum4(acc0), _mm_set1_ps(scale)));
            _mm_store_ps(sums[1], _mm_mul_ps(hsum4(acc1), _mm_set1_ps(scale)));
            for (int h = 0; h < NH; ++h) {
                scores[h][j] = sums[0][h];
                scores[h][j + 1] = sums[1][h];
            }
        }
    }
#endif
    for (; j < n; ++j)
        for (int h = 0; h < NH; ++h) scores[h][j] = dot_f32_f16(q[h], k + j * hd, hd) * scale;
}

// out[h] = sum_j p[h][j] * v_j for the NH heads of a pass, 16 dimensions at a time (two
// registers per head) while the values stream past.
template <int NH>
void pass_weighted_values(const float* const p[], const uint16_t* v, int64_t n, int hd,
                          float* const out[]) {
    int d = 0;
#ifdef MLLM_ATTN_AVX2
    for (; d + 16 <= hd; d += 16) {
        __m256 acc[NH][2];
        for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; ++j) {
            const uint16_t* vj = v + j * hd + d;
            const __m256 v0 =
                _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vj)));
            const __m256 v1 =
                _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vj + 8)));
            for (int h = 0; h < NH; ++h) {
                const __m256 pj = _mm256_broadcast_ss(p[h] + j);
                acc[h][0] = _mm256_fmadd_ps(pj, v0, acc[h][0]);
                acc[h][1] = _mm256_fmadd_ps(pj, v1, acc[h][1]);
            }
        }
        for (int h = 0; h < NH; ++h) {
            _mm256_storeu_ps(out[h] + d, acc[h][0]);
            _mm256_storeu_ps(out[h] + d + 8, acc[h][1]);
        }
    }
#endif
    if (d == hd) return;
    for (int h = 0; h < NH; ++h) {
        std::fill(out[h] + d, out[h] + hd, 0.0f);
        for (int64_t j = 0; j < n; ++j) axpy_f16(p[h][j], v + j * hd + d, out[h] + d, hd - d);
    }
}

// p = softmax(p) over n entries.
void softmax_inplace(float* p, int64_t n) {
    int64_t j = 0;
    float max_score = -std::numeric_limits<float>::infinity();
#ifdef MLLM_ATTN_AVX2
    __m256 vmax = _mm256_set1_ps(max_score);
    for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p + j));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    max_score = *std::max_element(lanes, lanes + 8);
#endif
    for (; j < n; ++j) max_score = std::max(max_score, p[j]);
    for (j = 0; j < n; ++j) p[j] -= max_score;
    exp_inplace(p, n);
    j = 0;
    float sum = 0;
#ifdef MLLM_ATTN_AVX2
    __m256 vsum = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) vsum = _mm256_add_ps(vsum, _mm256_loadu_ps(p + j));
    sum = hsum(vsum);
#endif
    for (; j < n; ++j) sum += p[j];
    const float inv = 1.0f / sum;
    for (j = 0; j < n; ++j) p[j] *= inv;
}

// One pass: nh heads of one token against keys [0, n_keys) of their KV head. A single head keeps
// the kernels above that work on four keys or 64 dimensions at once.
template <int NH>
void attention_pass(const float* const q[], const uint16_t* k, const uint16_t* v, int64_t n_keys,
                    int hd, float scale, float* const scores[], float* const out[]) {
    if constexpr (NH == 1) {
        key_scores(q[0], k, n_keys, hd, scale, scores[0]);
        softmax_inplace(scores[0], n_keys);
        weighted_values(scores[0], v, n_keys, hd, out[0]);
    } else {
        pass_key_scores<NH>(q, k, n_keys, hd, scale, scores);
        for (int h = 0; h < NH; ++h) softmax_inplace(scores[h], n_keys);
        pass_weighted_values<NH>(scores, v, n_keys, hd, out);
    }
}

}  // namespace

void kv_store(const float* k, const float* v, const KvLayer& cache, int64_t n_past,
              int64_t row_begin, int64_t row_end) {
    const int64_t hd = cache.head_dim;
    for (int64_t r = row_begin; r < row_end; ++r) {
        for (int64_t col = 0; col < cache.width; col += hd) {
            uint16_t* kd = cache.k + cache.at(n_past + r, col);
            uint16_t* vd = cache.v + cache.at(n_past + r, col);
            const float* ks = k + r * cache.width + col;
            const float* vs = v + r * cache.width + col;
            int64_t i = 0;
#ifdef MLLM_ATTN_AVX2
            // vcvtps2ph rounds to nearest even as fp32_to_fp16 does (the scalar conversion,
            // some 15 instructions a value, was most of this op's time).
            for (; i + 8 <= hd; i += 8) {
                constexpr int kRound = _MM_FROUND_TO_NEAREST_INT;
                _mm_storeu_si128(reinterpret_cast<__m128i*>(kd + i),
                                 _mm256_cvtps_ph(_mm256_loadu_ps(ks + i), kRound));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(vd + i),
                                 _mm256_cvtps_ph(_mm256_loadu_ps(vs + i), kRound));
            }
#endif
            for (; i < hd; ++i) {
                kd[i] = fp32_to_fp16(ks[i]);
                vd[i] = fp32_to_fp16(vs[i]);
            }
        }
    }
}

void attention(const float* q, const KvLayer& cache, float* out, int64_t n_past,
               const graph::Attrs& attrs, int64_t task_begin, int64_t task_end, float* scores) {
    const int hd = attrs.head_dim;
    const int group = attrs.n_head / attrs.n_head_kv;
    const int64_t q_width = static_cast<int64_t>(attrs.n_head) * hd;
    for (int64_t task = task_begin; task < task_end;) {
        const int64_t t = task / attrs.n_head;
        const int h = static_cast<int>(task % attrs.n_head);
        // This head and the next ones of the range that read the same KV head.
        int nh = 1;
        while (nh < kAttentionHeadsPerPass && task + nh < task_end && h + nh < attrs.n_head &&
               (h + nh) / group == h / group)
            ++nh;
        // Where this KV head's rows start (head-major cache).
        const int64_t kv_off = cache.at(0, static_cast<int64_t>(h / group) * hd);
        const int64_t n_keys = n_past + t + 1;  // causal: itself and everything before
        const float* qs[kAttentionHeadsPerPass];
        float* sc[kAttentionHeadsPerPass];
        float* os[kAttentionHeadsPerPass];
        for (int r = 0; r < nh; ++r) {
            qs[r] = q + t * q_width + (h + r) * hd;
            sc[r] = scores + r * n_keys;
            os[r] = out + t * q_width + (h + r) * hd;
        }
        const uint16_t* k = cache.k + kv_off;
        const uint16_t* v = cache.v + kv_off;
        const float scale = attrs.attn_scale;
        switch (nh) {
            case 1:
                attention_pass<1>(qs, k, v, n_keys, hd, scale, sc, os);
                break;
            case 2:
                attention_pass<2>(qs, k, v, n_keys, hd, scale, sc, os);
                break;
            case 3:
                attention_pass<3>(qs, k, v, n_keys, hd, scale, sc, os);
                break;
            default:
                attention_pass<4>(qs, k, v, n_keys, hd, scale, sc, os);
                break;
        }
        task += nh;
    }
}

}  // namespace mllm::cpu

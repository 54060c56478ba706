#include "backends/cpu/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/kernels/hsum_avx.h"
#include "backends/cpu/kernels/vec_math.h"
#include "core/fp16.h"

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define MLLM_ATTN_AVX2 1
#endif

namespace mllm::cpu {
namespace {

#ifdef MLLM_ATTN_AVX2
// How far ahead of the keys and values being read the kernels prefetch when they come from memory
// (attention's kv_from_memory). The hardware prefetchers alone left a long-context decode step's
// attention at about 12 GB/s; 2 KiB ahead (16 rows of 64 halfs) made it 20% faster at 1900
// positions (SmolLM2-135M, 2 threads; 1 and 8 KiB did as well or worse). In cache the prefetches
// only cost instructions (about 20% of the kernel).
constexpr int64_t kPrefetchBytes = 2048;

// Prefetches the `bytes` at `row` + kPrefetchBytes that lie before `end` (offsets are compared
// first, so no pointer past the end is ever formed).
inline void prefetch_ahead(const uint16_t* row, int64_t bytes, const uint16_t* end) {
    const auto* base = reinterpret_cast<const char*>(row);
    const int64_t stop =
        std::min<int64_t>(kPrefetchBytes + bytes, reinterpret_cast<const char*>(end) - base);
    for (int64_t at = kPrefetchBytes; at < stop; at += 64) _mm_prefetch(base + at, _MM_HINT_T0);
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

// The query heads that read one KV head (GQA) are computed together, up to kAttentionHeadsPerPass
// at a time, so each f16 key and value row is loaded and converted once for all of them instead
// of once per head (one vcvtph2ps per 8 halfs, as many as the FMAs of a single head).

// scores[h][j] = scale * q[h] . k_j for the NH heads of a pass and keys j in [0, n).
template <int NH>
void pass_key_scores(const float* const q[], const uint16_t* k, int64_t n, int hd, float scale,
                     float* const scores[], [[maybe_unused]] bool prefetch) {
    static_assert(NH <= 3, "12 accumulators at most");
    int64_t j = 0;
#ifdef MLLM_ATTN_AVX2
    if (hd % 8 == 0) {
        // Four keys at a time (12 accumulators for three heads), with each head's q chunk loaded
        // once for the four. A head's four horizontal sums are one vector, stored as is.
        constexpr int kKeys = 4;
        for (; j + kKeys <= n; j += kKeys) {
            const uint16_t* k0 = k + j * hd;
            if (prefetch) prefetch_ahead(k0, kKeys * hd * 2, k + n * hd);
            __m256 acc[NH][kKeys];
            for (auto& a : acc)
                for (__m256& x : a) x = _mm256_setzero_ps();
            for (int i = 0; i < hd; i += 8) {
                __m256 qv[NH];
                for (int h = 0; h < NH; ++h) {
                    qv[h] = _mm256_loadu_ps(q[h] + i);
                    // Kept in a register: GCC would otherwise fold the load into every FMA
                    // that uses it.
                    asm("" : "+x"(qv[h]));
                }
                for (int key = 0; key < kKeys; ++key) {
                    const __m256 kv = _mm256_cvtph_ps(
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(k0 + key * hd + i)));
                    for (int h = 0; h < NH; ++h)
                        acc[h][key] = _mm256_fmadd_ps(qv[h], kv, acc[h][key]);
                }
            }
            const __m128 sv = _mm_set1_ps(scale);
            for (int h = 0; h < NH; ++h)
                _mm_storeu_ps(scores[h] + j, _mm_mul_ps(hsum4(acc[h]), sv));
        }
    }
#endif
    // The last keys (fewer than a block), or every key without AVX2.
    for (; j < n; ++j)
        for (int h = 0; h < NH; ++h) scores[h][j] = dot_f32_f16(q[h], k + j * hd, hd) * scale;
}

#ifdef MLLM_ATTN_AVX2
// out[h] = scale[h] * sum_j p[h][j] * v_j for the NH heads of a pass, W dimensions at a time
// while the values stream past. Wider chunks load and convert each value once for more
// multiply-adds, and sweep the values fewer times.
template <int NH, int W>
void weighted_value_chunks(const float* const p[], const float* scale, const uint16_t* v, int64_t n,
                           int hd, float* const out[], bool prefetch, int& d) {
    constexpr int kVecs = W / 8;
    for (; d + W <= hd; d += W) {
        __m256 acc[NH][kVecs];
        for (auto& a : acc)
            for (__m256& x : a) x = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; ++j) {
            const uint16_t* vj = v + j * hd + d;
            if (prefetch && d == 0) prefetch_ahead(v + j * hd, hd * 2, v + n * hd);
            __m256 pj[NH];
            for (int h = 0; h < NH; ++h) pj[h] = _mm256_broadcast_ss(p[h] + j);
            for (int c = 0; c < kVecs; ++c) {
                const __m256 vc =
                    _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vj + 8 * c)));
                for (int h = 0; h < NH; ++h) acc[h][c] = _mm256_fmadd_ps(pj[h], vc, acc[h][c]);
            }
        }
        for (int h = 0; h < NH; ++h) {
            const __m256 sh = _mm256_set1_ps(scale[h]);
            for (int c = 0; c < kVecs; ++c)
                _mm256_storeu_ps(out[h] + d + 8 * c, _mm256_mul_ps(acc[h][c], sh));
        }
    }
}
#endif

template <int NH>
void pass_weighted_values(const float* const p[], const float* scale, const uint16_t* v, int64_t n,
                          int hd, float* const out[], [[maybe_unused]] bool prefetch) {
    int d = 0;
#ifdef MLLM_ATTN_AVX2
    // 8 accumulators for one head, 8 or 12 for two or three; then what is left (80-dimension
    // heads) 16 at a time.
    if constexpr (NH == 1) weighted_value_chunks<NH, 64>(p, scale, v, n, hd, out, prefetch, d);
    weighted_value_chunks<NH, 32>(p, scale, v, n, hd, out, prefetch, d);
    weighted_value_chunks<NH, 16>(p, scale, v, n, hd, out, prefetch, d);
#endif
    if (d == hd) return;
    for (int h = 0; h < NH; ++h) {
        std::fill(out[h] + d, out[h] + hd, 0.0f);
        for (int64_t j = 0; j < n; ++j) axpy_f16(p[h][j], v + j * hd + d, out[h] + d, hd - d);
        for (int i = d; i < hd; ++i) out[h][i] *= scale[h];
    }
}

// p = exp(p - max p) over n entries; returns their sum (softmax before its normalization, which
// the weighted sum of values applies to its result instead of to every entry).
float softmax_unnormalized(float* p, int64_t n) {
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
    return exp_shifted_sum(p, n, max_score);
}

// One pass: nh heads of one token against keys [0, n_keys) of their KV head.
template <int NH>
void attention_pass(const float* const q[], const uint16_t* k, const uint16_t* v, int64_t n_keys,
                    int hd, float scale, float* const scores[], float* const out[], bool prefetch) {
    pass_key_scores<NH>(q, k, n_keys, hd, scale, scores, prefetch);
    float inv_sum[NH];
    for (int h = 0; h < NH; ++h) inv_sum[h] = 1.0f / softmax_unnormalized(scores[h], n_keys);
    pass_weighted_values<NH>(scores, inv_sum, v, n_keys, hd, out, prefetch);
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
               const graph::Attrs& attrs, int64_t task_begin, int64_t task_end, float* scores,
               bool kv_from_memory) {
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
                attention_pass<1>(qs, k, v, n_keys, hd, scale, sc, os, kv_from_memory);
                break;
            case 2:
                attention_pass<2>(qs, k, v, n_keys, hd, scale, sc, os, kv_from_memory);
                break;
            default:
                attention_pass<3>(qs, k, v, n_keys, hd, scale, sc, os, kv_from_memory);
                break;
        }
        task += nh;
    }
}

}  // namespace mllm::cpu

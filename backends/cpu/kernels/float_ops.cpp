#include "backends/cpu/kernels/float_ops.h"

#include <cmath>

#include "backends/cpu/kernels/vec_math.h"
#include "core/quant/quant.h"

#if defined(__AVX2__)
#include <immintrin.h>
#define MLLM_FLOAT_OPS_AVX2 1
#endif

namespace mllm::cpu {
namespace {

// The first column of row[0, cols) holding its largest value, NaN never winning (the sampler's
// rule), as the scalar loop below; eight columns at a time: each lane keeps the first column of
// its largest value (a strict > never takes a later equal one, nor NaN), then the lanes' best
// values are compared, the lowest column winning a tie. Decode runs it over the whole vocabulary
// (49152 to 151936 logits) every token.
int64_t argmax_row(const float* row, int64_t cols) {
    float best_value = -INFINITY;
    int64_t best = 0;
    int64_t i = 0;
#ifdef MLLM_FLOAT_OPS_AVX2
    if (cols >= 16) {
        __m256 vbest = _mm256_set1_ps(-INFINITY);
        __m256i ibest = _mm256_setzero_si256();
        __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i step = _mm256_set1_epi32(8);
        for (; i + 8 <= cols; i += 8) {
            const __m256 v = _mm256_loadu_ps(row + i);
            const __m256 gt = _mm256_cmp_ps(v, vbest, _CMP_GT_OQ);
            vbest = _mm256_blendv_ps(vbest, v, gt);
            ibest = _mm256_blendv_epi8(ibest, idx, _mm256_castps_si256(gt));
            idx = _mm256_add_epi32(idx, step);
        }
        alignas(32) float values[8];
        alignas(32) int32_t columns[8];
        _mm256_store_ps(values, vbest);
        _mm256_store_si256(reinterpret_cast<__m256i*>(columns), ibest);
        for (int lane = 0; lane < 8; ++lane) {
            if (values[lane] > best_value || (values[lane] == best_value && columns[lane] < best)) {
                best_value = values[lane];
                best = columns[lane];
            }
        }
    }
#endif
    // A comparison with NaN is false, so it never displaces the best, and a NaN first value
    // leaves -inf.
    for (; i < cols; ++i) {
        if (row[i] > best_value) {
            best_value = row[i];
            best = i;
        }
    }
    return best;
}

}  // namespace

void argmax(const float* x, int32_t* y, int64_t cols, int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
        y[r] = static_cast<int32_t>(argmax_row(x + r * cols, cols));
    }
}

void rms_norm_mul(const float* x, const float* w, float* y, int64_t cols, float eps,
                  int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        // Sum in double, as ggml does, so long rows don't lose precision; in 8 partial sums,
        // so the adds are not one chain of dependent double additions (4 cycles each: 2.3 k
        // cycles for a 576-wide row, run serially 61 times per decode token of SmolLM2).
        double part[8] = {};
        const int64_t whole = cols / 8 * 8;
        for (int64_t i = 0; i < whole; i += 8)
            for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(xr[i + j]) * xr[i + j];
        for (int64_t i = whole; i < cols; ++i) part[0] += static_cast<double>(xr[i]) * xr[i];
        const double sum = ((part[0] + part[1]) + (part[2] + part[3])) +
                           ((part[4] + part[5]) + (part[6] + part[7]));
        const float scale =
            1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(cols)) + eps);
        if (w == nullptr) {
            for (int64_t i = 0; i < cols; ++i) yr[i] = xr[i] * scale;
        } else {
            for (int64_t i = 0; i < cols; ++i) yr[i] = xr[i] * scale * w[i];
        }
    }
}

void add(const float* a, const float* b, float* y, int64_t cols, bool broadcast_b,
         int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
        const float* ar = a + r * cols;
        const float* br = broadcast_b ? b : b + r * cols;
        float* yr = y + r * cols;
        for (int64_t i = 0; i < cols; ++i) yr[i] = ar[i] + br[i];
    }
}

void mul(const float* a, const float* b, float* y, int64_t cols, bool broadcast_b,
         int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
        const float* ar = a + r * cols;
        const float* br = broadcast_b ? b : b + r * cols;
        float* yr = y + r * cols;
        for (int64_t i = 0; i < cols; ++i) yr[i] = ar[i] * br[i];
    }
}

void silu(const float* x, float* y, int64_t cols, int64_t row_begin, int64_t row_end) {
    const int64_t at = row_begin * cols;
    silu_mul(x + at, nullptr, y + at, (row_end - row_begin) * cols);
}

void swiglu(const float* gate, const float* up, float* y, int64_t cols, int64_t row_begin,
            int64_t row_end) {
    const int64_t at = row_begin * cols;
    silu_mul(gate + at, up + at, y + at, (row_end - row_begin) * cols);
}

void rope(const float* x, const int32_t* positions, float* y, int64_t cols,
          const graph::Attrs& attrs, int64_t row_begin, int64_t row_end) {
    const int hd = attrs.head_dim;
    const int half = hd / 2;
    // theta_i = pos * scale * base^(-2i/d), built by repeated multiplication as ggml does so our
    // angles round the same way.
    const float theta_scale = std::pow(attrs.rope_base, -2.0f / static_cast<float>(hd));
    // The angles of the last position this thread rotated by: every layer's queries and keys
    // of a decode token (60 ops in SmolLM2) share them, and a sin and cos per pair of dimensions
    // was most of the op's time.
    thread_local struct {
        int32_t position = 0;
        float freq_scale = 0, theta_scale = 0;
        int half = 0;
        float cos_t[kMaxHeadDim / 2], sin_t[kMaxHeadDim / 2];
    } angles;
    const float* cos_t = angles.cos_t;
    const float* sin_t = angles.sin_t;
    for (int64_t r = row_begin; r < row_end; ++r) {
        if (angles.half != half || angles.position != positions[r] ||
            angles.freq_scale != attrs.rope_freq_scale || angles.theta_scale != theta_scale) {
            angles.half = half;
            angles.position = positions[r];
            angles.freq_scale = attrs.rope_freq_scale;
            angles.theta_scale = theta_scale;
            float theta = static_cast<float>(positions[r]) * attrs.rope_freq_scale;
            for (int i = 0; i < half; ++i) {
                angles.cos_t[i] = std::cos(theta);
                angles.sin_t[i] = std::sin(theta);
                theta *= theta_scale;
            }
        }
        for (int h = 0; h < attrs.n_head; ++h) {
            const float* xh = x + r * cols + h * hd;
            float* yh = y + r * cols + h * hd;
            for (int i = 0; i < half; ++i) {
                // Normal mode rotates neighbours (2i, 2i+1); NeoX rotates (i, i + d/2).
                const int a = attrs.rope_mode == graph::RopeMode::Normal ? 2 * i : i;
                const int b = attrs.rope_mode == graph::RopeMode::Normal ? 2 * i + 1 : i + half;
                const float x0 = xh[a], x1 = xh[b];
                const float c = cos_t[i], s = sin_t[i];
                yh[a] = x0 * c - x1 * s;
                yh[b] = x0 * s + x1 * c;
            }
        }
    }
}

void embed(const uint8_t* table, DType type, int64_t cols, const int32_t* ids, float* y,
           int64_t row_begin, int64_t row_end) {
    const size_t stride = row_bytes(type, cols);
    for (int64_t r = row_begin; r < row_end; ++r)
        dequantize_row(type, table + static_cast<size_t>(ids[r]) * stride, y + r * cols, cols);
}

}  // namespace mllm::cpu

#include "backends/cpu/kernels/float_ops.h"

#include <cmath>

#include "backends/cpu/kernels/vec_math.h"
#include "core/quant/quant.h"

namespace mllm::cpu {

void argmax(const float* x, int32_t* y, int64_t cols, int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
        const float* row = x + r * cols;
        // NaN counts as -inf (the sampler's rule): a comparison with NaN is false, so it never
        // displaces the best, and a NaN first value starts as -inf.
        float best_value = std::isnan(row[0]) ? -INFINITY : row[0];
        int32_t best = 0;
        for (int64_t i = 1; i < cols; ++i) {
            if (row[i] > best_value) {
                best_value = row[i];
                best = static_cast<int32_t>(i);
            }
        }
        y[r] = best;
    }
}

void rms_norm_mul(const float* x, const float* w, float* y, int64_t cols, float eps,
                  int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        // Sum in double, as ggml does, so long rows don't lose precision.
        double sum = 0;
        for (int64_t i = 0; i < cols; ++i) sum += static_cast<double>(xr[i]) * xr[i];
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
    float cos_t[kMaxHeadDim / 2], sin_t[kMaxHeadDim / 2];
    for (int64_t r = row_begin; r < row_end; ++r) {
        float theta = static_cast<float>(positions[r]) * attrs.rope_freq_scale;
        for (int i = 0; i < half; ++i) {
            cos_t[i] = std::cos(theta);
            sin_t[i] = std::sin(theta);
            theta *= theta_scale;
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

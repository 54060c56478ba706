#pragma once
// Row-wise float kernels of the CPU backend. Each works on rows [row_begin, row_end) so the
// caller can split rows across threads; all are plain loops the compiler vectorizes.
#include <cstdint>

#include "core/dtype.h"
#include "graph/ir.h"

namespace mllm::cpu {

// Largest head size the kernels keep per-head scratch for on the stack.
constexpr int kMaxHeadDim = 512;

// y = x / sqrt(mean(x^2) + eps) * w (w == nullptr: no weight)
void rms_norm_mul(const float* x, const float* w, float* y, int64_t cols, float eps,
                  int64_t row_begin, int64_t row_end);
// y = a + b; b has the same rows as a, or one row broadcast (b_rows == 1)
void add(const float* a, const float* b, float* y, int64_t cols, bool broadcast_b,
         int64_t row_begin, int64_t row_end);
// y = a * b, same broadcasting as add
void mul(const float* a, const float* b, float* y, int64_t cols, bool broadcast_b,
         int64_t row_begin, int64_t row_end);
// y = silu(x)
void silu(const float* x, float* y, int64_t cols, int64_t row_begin, int64_t row_end);
// The column of each row's largest value, the lowest on ties, NaN counted as -inf: the greedy
// pick, as the sampler makes it.
void argmax(const float* x, int32_t* y, int64_t cols, int64_t row_begin, int64_t row_end);
// y = silu(gate) * up
void swiglu(const float* gate, const float* up, float* y, int64_t cols, int64_t row_begin,
            int64_t row_end);
// Rotates each head of row r by position positions[r], in place from x into y (may alias).
void rope(const float* x, const int32_t* positions, float* y, int64_t cols,
          const graph::Attrs& attrs, int64_t row_begin, int64_t row_end);
// y[r] = dequantized table row ids[r]; ids were validated by the runtime.
void embed(const uint8_t* table, DType type, int64_t cols, const int32_t* ids, float* y,
           int64_t row_begin, int64_t row_end);

}  // namespace mllm::cpu

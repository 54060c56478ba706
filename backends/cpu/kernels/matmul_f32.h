#pragma once
#include <cstdint>

namespace mllm::cpu {

// y[t * ldy + r] = dot(w row r, x row t) for r in [row_begin, row_end), t in [0, n): f32 weights
// through Eigen's GEMM (single-threaded; the caller splits rows).
void matmul_f32(const float* x, int64_t n, int64_t k, const float* w, int64_t row_begin,
                int64_t row_end, float* y, int64_t ldy);

}  // namespace mllm::cpu

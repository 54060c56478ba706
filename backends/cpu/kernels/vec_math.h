#pragma once
// Vectorized transcendental helpers for the float kernels (softmax, SiLU).
#include <cstdint>

namespace mllm::cpu {

// x[i] = exp(x[i] - shift), returning the sum of the results: softmax's exponentials and their
// sum in one pass (eight partial sums, then the rest in order). On x86-64 builds with AVX2 this
// calls glibc's libmvec (_ZGVdN8v_expf, the vector variant of expf that GCC itself emits under
// -ffast-math; within 4 ulp of expf), eight lanes at a time; elsewhere plain expf.
float exp_shifted_sum(float* x, int64_t n, float shift);

// y[i] = silu(gate[i]) * up[i] (up == nullptr: silu alone); y may alias gate.
void silu_mul(const float* gate, const float* up, float* y, int64_t n);

}  // namespace mllm::cpu

#pragma once
// Fused quantized matrix multiply for the CPU backend: weights stay in their GGUF block format
// and are decoded in registers; activations are first quantized to 8-bit blocks so the inner
// loop is an integer dot product. Float weights (F16, BF16, F32) are converted in registers
// against f32 activations. Kernels are picked at run time (cpu_features.h): AVX-512 VNNI, AVX2,
// NEON dot product (Armv8.2-A) and portable scalar ones.
#include <cstddef>
#include <cstdint>

#include "backends/cpu/kernels/cpu_features.h"
#include "core/dtype.h"
#include "core/quant/quant.h"  // activation_type

namespace mllm::cpu {

// Converts one activation row of k floats into activation_type(weight): 8-bit blocks for the
// quantized formats; for F16/BF16 weights f32 values rounded to that precision; a copy for F32.
// dst must hold row_bytes(activation_type(weight), k) bytes.
void quantize_activation_row(DType weight, const float* x, void* dst, int64_t k);

// y[t * ldy + r] = dot(weight row r, activation row t)
//   for r in [row_begin, row_end) and t in [0, n_tokens).
// w: the whole weight matrix, rows of k elements, w_row_bytes = row_bytes(weight, k) apart.
// act: n_tokens rows produced by quantize_activation_row, act_row_bytes apart.
// Single-threaded: the caller splits [0, rows) across its threads.
void quant_matmul(DType weight, int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t row_begin,
                  int64_t row_end, const uint8_t* act, size_t act_row_bytes, int64_t n_tokens,
                  float* y, int64_t ldy);

// Name of the instruction set the kernels dispatch to on this machine ("avx512vnni", "avx2",
// "neon-dotprod", "scalar"); MLLM_CPU_ISA=scalar|avx2|... in the environment forces a lower one.
const char* quant_kernel_isa();

// quant_matmul with the kernels of one instruction set, which cpu_supports(isa) must allow;
// a set without a kernel for `weight` falls back to the next lower one. Tests use it to check
// every path this machine can run against the scalar one.
void quant_matmul_isa(Isa isa, DType weight, int64_t k, const uint8_t* w, size_t w_row_bytes,
                      int64_t row_begin, int64_t row_end, const uint8_t* act, size_t act_row_bytes,
                      int64_t n_tokens, float* y, int64_t ldy);

// The instruction set quant_matmul_isa(isa, weight, ...) really runs (after fallbacks).
Isa quant_kernel_isa_for(Isa isa, DType weight);

namespace detail {

// What the per-instruction-set kernels below receive: quant_matmul's arguments.
struct MatmulArgs {
    DType weight;
    int64_t k;
    const uint8_t* w;
    size_t w_row_bytes;
    int64_t row_begin;
    int64_t row_end;
    const uint8_t* act;
    size_t act_row_bytes;
    int64_t n_tokens;
    float* y;
    int64_t ldy;
};

// One entry point per instruction set, each in its own file (quant_matmul_<isa>.cpp) compiled
// for that set and covering every weight type the runtime computes with; run_* must only be
// called when the CPU supports the set.
void run_scalar_kernel(const MatmulArgs& args);
void run_avx2_kernel(const MatmulArgs& args);
// AVX-512 F/BW/VL/DQ with VNNI: the AVX2 kernels' code with vpdpbusd / vpdpwssd, bit-identical.
void run_avx512_kernel(const MatmulArgs& args);
// Armv8.2-A with the dot product and fp16 extensions (aarch64 builds only).
void run_neon_kernel(const MatmulArgs& args);

// quantize_row_q8_0 (core/quant) with AVX2, bit-exact with it; decode pays for one activation
// quantization per matmul input, which the scalar reference makes a noticeable share.
void quantize_row_q8_0_avx2(const float* x, void* dst, int64_t k);

// Per-thread scratch memory of at least `bytes`, 64-byte aligned, for kernels that decode
// weights or reorganize activations; valid until the next call on the same thread.
void* kernel_scratch(size_t bytes);

}  // namespace detail
}  // namespace mllm::cpu

// Dispatch of the fused matmul to the best kernels this CPU runs, activation quantization, and
// the per-thread scratch the SIMD kernels decode into.
#include "backends/cpu/kernels/quant_matmul.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/fp16.h"
#include "core/quant/quant.h"

namespace mllm::cpu {

namespace {

// Each instruction set built into this binary covers every weight type the runtime computes
// with; resolve() falls back for sets without kernels of their own.
bool has_kernel(Isa isa, DType weight) {
    if (!dtype_traits(weight).weight_supported) return false;
    switch (isa) {
        case Isa::Scalar:
            return true;
#if defined(__x86_64__)
        case Isa::Avx2:
        case Isa::Avx512Vnni:
            return true;
#endif
#if defined(__aarch64__)
        case Isa::NeonDotprod:
            return true;
#endif
        default:
            return false;
    }
}

// The set quant_matmul_isa(isa, weight) runs: isa itself or the nearest lower one with a kernel
// for weight.
Isa resolve(Isa isa, DType weight) {
    if (isa == Isa::Avx512Vnni && !has_kernel(isa, weight)) isa = Isa::Avx2;
    if (!has_kernel(isa, weight)) isa = Isa::Scalar;
    return isa;
}

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

}  // namespace

void quantize_activation_row(DType weight, const float* x, void* dst, int64_t k) {
    switch (activation_type(weight)) {
        case DType::Q8_0:
#if defined(__x86_64__)
            if (best_isa() != Isa::Scalar) {
                detail::quantize_row_q8_0_avx2(x, dst, k);
                break;
            }
#endif
            quantize_row_q8_0(x, dst, k);
            break;
        case DType::Q8_K:
            quantize_row_q8_k(x, dst, k);
            break;
        default: {
            // Half-precision weights multiply activations rounded to the weights' precision, as
            // ggml does (its vec_dot_type for F16/BF16 is the weight type): products and sums stay
            // f32, so results match llama.cpp's to float rounding.
            auto* out = static_cast<float*>(dst);
            if (weight == DType::F16) {
                for (int64_t i = 0; i < k; ++i) out[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
            } else if (weight == DType::BF16) {
                for (int64_t i = 0; i < k; ++i) out[i] = bf16_to_fp32(fp32_to_bf16(x[i]));
            } else {
                std::memcpy(dst, x, static_cast<size_t>(k) * sizeof(float));
            }
            break;
        }
    }
}

void quant_matmul_isa(Isa isa, DType weight, int64_t k, const uint8_t* w, size_t w_row_bytes,
                      int64_t row_begin, int64_t row_end, const uint8_t* act, size_t act_row_bytes,
                      int64_t n_tokens, float* y, int64_t ldy) {
    if (row_end <= row_begin || n_tokens <= 0) return;
    const detail::MatmulArgs args{weight,        k,        w, w_row_bytes, row_begin, row_end, act,
                                  act_row_bytes, n_tokens, y, ldy};
    switch (resolve(isa, weight)) {
#if defined(__x86_64__)
        case Isa::Avx512Vnni:
            detail::run_avx512_kernel(args);
            return;
        case Isa::Avx2:
            detail::run_avx2_kernel(args);
            return;
#endif
#if defined(__aarch64__)
        case Isa::NeonDotprod:
            detail::run_neon_kernel(args);
            return;
#endif
        case Isa::Scalar:
            detail::run_scalar_kernel(args);
            return;
        default:
            break;
    }
    fail("quant_matmul: no kernel for weights of type ", dtype_name(weight));
}

Isa quant_kernel_isa_for(Isa isa, DType weight) {
    return resolve(isa, weight);
}

void quant_matmul(DType weight, int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t row_begin,
                  int64_t row_end, const uint8_t* act, size_t act_row_bytes, int64_t n_tokens,
                  float* y, int64_t ldy) {
    quant_matmul_isa(best_isa(), weight, k, w, w_row_bytes, row_begin, row_end, act, act_row_bytes,
                     n_tokens, y, ldy);
}

const char* quant_kernel_isa() {
    return isa_name(resolve(best_isa(), DType::Q4_0));
}

namespace detail {

void* kernel_scratch(size_t bytes) {
    thread_local std::unique_ptr<void, FreeDeleter> buffer;
    thread_local size_t capacity = 0;
    if (bytes > capacity) {
        // Grow geometrically, in whole cache lines, so a thread settles on one buffer.
        size_t want = capacity * 2 > bytes ? capacity * 2 : bytes;
        want = (want + 63) / 64 * 64;
        buffer.reset(std::aligned_alloc(64, want));
        if (!buffer) fail("quant_matmul: out of memory for ", want, " bytes of scratch");
        capacity = want;
    }
    return buffer.get();
}

}  // namespace detail
}  // namespace mllm::cpu

// Dispatch from a DType to its row converter (quant_simple.cpp, quant_k.cpp).
#include "core/quant/quant.h"

#include <cstring>

#include "core/error.h"
#include "core/quant/quant_impl.h"

namespace mllm {
namespace {

using QuantizeFn = void (*)(const float*, void*, int64_t);
using DequantizeFn = void (*)(const void*, float*, int64_t);

struct Converter {
    QuantizeFn quantize;
    DequantizeFn dequantize;
};

void copy_f32_in(const float* x, void* y, int64_t n) {
    std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}
void copy_f32_out(const void* x, float* y, int64_t n) {
    std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}

// Null for types without a float conversion.
const Converter* find_converter(DType type) {
    using namespace quant_detail;
    static constexpr Converter kF32{copy_f32_in, copy_f32_out};
    static constexpr Converter kF16{f16_from_f32, f16_to_f32};
    static constexpr Converter kBF16{bf16_from_f32, bf16_to_f32};
    static constexpr Converter kQ4_0{quantize_q4_0, dequantize_q4_0};
    static constexpr Converter kQ4_1{quantize_q4_1, dequantize_q4_1};
    static constexpr Converter kQ5_0{quantize_q5_0, dequantize_q5_0};
    static constexpr Converter kQ8_0{quantize_q8_0, dequantize_q8_0};
    static constexpr Converter kQ4_K{quantize_q4_k, dequantize_q4_k};
    static constexpr Converter kQ5_K{quantize_q5_k, dequantize_q5_k};
    static constexpr Converter kQ6_K{quantize_q6_k, dequantize_q6_k};
    static constexpr Converter kQ8_K{quantize_q8_k, dequantize_q8_k};
    switch (type) {
        case DType::F32:
            return &kF32;
        case DType::F16:
            return &kF16;
        case DType::BF16:
            return &kBF16;
        case DType::Q4_0:
            return &kQ4_0;
        case DType::Q4_1:
            return &kQ4_1;
        case DType::Q5_0:
            return &kQ5_0;
        case DType::Q8_0:
            return &kQ8_0;
        case DType::Q4_K:
            return &kQ4_K;
        case DType::Q5_K:
            return &kQ5_K;
        case DType::Q6_K:
            return &kQ6_K;
        case DType::Q8_K:
            return &kQ8_K;
        default:
            return nullptr;
    }
}

std::string_view safe_name(DType type) {
    const DTypeTraits* traits = find_dtype(static_cast<uint32_t>(type));
    return traits != nullptr ? traits->name : std::string_view("unknown");
}

const Converter& converter_for(DType type, int64_t n, const char* what) {
    const Converter* conv = find_converter(type);
    if (conv == nullptr)
        fail(what, ": no float conversion for type ", safe_name(type), " (id ",
             static_cast<uint32_t>(type), ")");
    const int64_t block = dtype_traits(type).block_size;
    if (n < 0 || n % block != 0)
        fail(what, ": ", n, " elements is not a whole number of ", safe_name(type), " blocks of ",
             block);
    return *conv;
}

}  // namespace

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
    converter_for(type, n, "dequantize_row").dequantize(src, dst, n);
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
    converter_for(type, n, "quantize_row").quantize(src, dst, n);
}

DType activation_type(DType weight) {
    switch (weight) {
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q8_0:
            return DType::Q8_0;
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
            return DType::Q8_K;
        case DType::F32:
        case DType::F16:
        case DType::BF16:
            return DType::F32;
        default:
            fail("no dot product with weights of type ", dtype_name(weight));
    }
}

void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
    converter_for(DType::Q8_0, n, "quantize_row_q8_0").quantize(src, dst, n);
}

void quantize_row_q8_k(const float* src, void* dst, int64_t n) {
    converter_for(DType::Q8_K, n, "quantize_row_q8_k").quantize(src, dst, n);
}

}  // namespace mllm

#pragma once
// GEMV/GEMM against weights in their GGUF layout (shaders/matmul.comp): y[n, m] = x[n, k] W^T,
// W [m, k] of type F32, Q8_0 or Q4_0, dequantized in registers inside the shader; x and y f32.
#include <cstdint>

#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"

namespace mllm::vk {

struct MatMulArgs {
    DType weight_type = DType::F32;
    int64_t m = 0;  // weight rows: output features
    int64_t k = 0;  // input features (a multiple of 32 for the quantized types)
    int64_t n = 0;  // tokens
    BufferRange w, x, y;
    // Where the tensors start inside their bindings, and the distance between token rows.
    int64_t w_offset = 0;   // bytes, a multiple of 4
    int64_t x_offset = 0;   // floats
    int64_t x_stride = -1;  // floats; -1: k
    int64_t y_offset = 0;
    int64_t y_stride = -1;  // -1: m
};

// How a dispatch is shaped; 0 picks the device's default.
struct MatMulConfig {
    uint32_t workgroup = 0;  // threads per workgroup
    uint32_t rows = 0;       // weight rows per workgroup
    uint32_t tokens = 0;     // tokens per workgroup
};

bool matmul_supports(DType weight_type);
// The configuration record_matmul uses for this device, weight type and token count.
MatMulConfig matmul_config(const DeviceProps& device, DType weight_type, int64_t n,
                           MatMulConfig overrides = {});
// Records the product into `seq`. Throws mllm::Error for unsupported types or shapes, or ranges
// too small for the shape.
void record_matmul(Context& ctx, Sequence& seq, const MatMulArgs& args,
                   MatMulConfig overrides = {});

}  // namespace mllm::vk

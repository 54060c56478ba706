#pragma once
// Elementwise ops over f32 tensors (shaders/elementwise.comp): residual add, multiply, SiLU,
// SwiGLU and copy. y may be a or b.
#include <cstdint>

#include "backends/vulkan/vk_context.h"

namespace mllm::vk {

enum class Elementwise : uint32_t { Add = 0, Mul = 1, Silu = 2, SwiGlu = 3, Copy = 4 };

struct ElementwiseArgs {
    Elementwise op = Elementwise::Add;
    int64_t n = 0;                                     // elements of a and y
    int64_t cols = 0;                                  // row width (for a broadcast b)
    BufferRange a, b, y;                               // b unused (may be empty) for Silu and Copy
    int64_t a_offset = 0, b_offset = 0, y_offset = 0;  // floats
    bool b_broadcast = false;  // b is one row of `cols`, repeated over a's rows
};

void record_elementwise(Context& ctx, Sequence& seq, const ElementwiseArgs& args);

}  // namespace mllm::vk

#pragma once
// Elementwise ops over f32 tensors (shaders/elementwise.comp): residual add, multiply, SiLU,
// SwiGLU and copy. y may be a or b.
#include <cstdint>

#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"

namespace mllm::vk {

enum class Elementwise : uint32_t { Add = 0, Mul = 1, Silu = 2, SwiGlu = 3, Copy = 4 };

struct ElementwiseArgs {
    Elementwise op = Elementwise::Add;
    int64_t n = 0;                                     // elements of a and y
    int64_t cols = 0;                                  // row width (for a broadcast b)
    BufferRange a, b, y;                               // b unused (may be empty) for Silu and Copy
    int64_t a_offset = 0, b_offset = 0, y_offset = 0;  // floats
    bool b_broadcast = false;  // b is one row of `cols`, repeated over a's rows
    // SwiGlu only (no broadcast): y also rounded (rounded.buffer set) to the 8-bit blocks of
    // round_format (Q8_0 or Q8_K; round_packed: packed Q8_0) exactly as record_round_activations
    // writes it, so the matmul after it needs no rounding dispatch. cols must be a multiple of
    // the block; rounded_offset counts floats (words when packed).
    BufferRange rounded;
    int64_t rounded_offset = 0;
    DType round_format = DType::Q8_0;
    bool round_packed = false;
};

void record_elementwise(Context& ctx, Sequence& seq, const ElementwiseArgs& args);

}  // namespace mllm::vk

#pragma once
// Rounds f32 activations to the 8-bit blocks (Q8_0 or Q8_K) that quantized weights multiply on
// the CPU backend, written back as floats (shaders/round_activations.comp): the matmul's float
// dot products then compute what the CPU's integer ones do, so the backends agree with each
// other and with llama.cpp.
#include <cstdint>

#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"

namespace mllm::vk {

struct RoundActivationsArgs {
    DType format = DType::Q8_0;  // Q8_0 or Q8_K
    int64_t rows = 0;
    int64_t cols = 0;  // a multiple of the format's block
    BufferRange x, y;
    int64_t x_offset = 0, y_offset = 0;  // floats; rows are contiguous
    // Q8_0 only: write the blocks as int8 quants and f32 scales (q8_0_packed_words per row, the
    // layout the integer dot-product matmuls read) instead of multiplied out. y_offset is then
    // in words.
    bool packed = false;
};

// 32-bit words per row of `cols` activations in the packed Q8_0 layout: the quants, then one
// scale per 32.
inline int64_t q8_0_packed_words(int64_t cols) {
    return cols / 4 + cols / 32;
}

void record_round_activations(Context& ctx, Sequence& seq, const RoundActivationsArgs& args);

}  // namespace mllm::vk

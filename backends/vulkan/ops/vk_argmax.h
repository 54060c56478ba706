#pragma once
// Greedy sampling on the device (shaders/argmax.comp): y[r] = the column of row r's largest
// value, the lowest on ties, NaN counted as -inf (as cpu::argmax and the sampler).
#include <cstdint>

#include "backends/vulkan/vk_context.h"

namespace mllm::vk {

struct ArgmaxArgs {
    int64_t rows = 0;
    int64_t cols = 0;
    BufferRange x, y;       // x f32, y int32
    int64_t x_offset = 0;   // floats
    int64_t x_stride = -1;  // floats between rows (-1: cols)
    int64_t y_offset = 0;   // ints
};

// `workgroup` threads per row; 0 picks the device's default.
void record_argmax(Context& ctx, Sequence& seq, const ArgmaxArgs& args, uint32_t workgroup = 0);

}  // namespace mllm::vk

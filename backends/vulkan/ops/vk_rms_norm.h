#pragma once
// RMSNorm times its weight (shaders/rms_norm.comp): y = x / sqrt(mean(x^2) + eps) * w per row,
// f32; without a weight binding, plain RMSNorm; optionally with the residual add before it
// fused in. y may be x (in place).
#include <cstdint>

#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"

namespace mllm::vk {

struct RmsNormArgs {
    int64_t rows = 0;
    int64_t cols = 0;
    float eps = 1e-6f;
    BufferRange x, w, y;  // w.buffer == VK_NULL_HANDLE: no weight
    // Offsets and row strides in floats (-1: cols).
    int64_t x_offset = 0;
    int64_t x_stride = -1;
    int64_t w_offset = 0;
    int64_t y_offset = 0;
    int64_t y_stride = -1;
    // A residual add fused in front (b.buffer set): x + b is normalized and also written to
    // `sum`, in one dispatch instead of two. y must not overlap x or b. Offsets and strides as
    // above.
    BufferRange b, sum;
    int64_t b_offset = 0;
    int64_t b_stride = -1;
    int64_t sum_offset = 0;
    int64_t sum_stride = -1;
    // The output also rounded (rounded.buffer set) to the 8-bit blocks of round_format (Q8_0 or
    // Q8_K; round_packed: Q8_0 in the packed layout) exactly as record_round_activations writes
    // it, rows contiguous: the matmuls after the norm then need no rounding dispatch. cols must
    // be a multiple of the block. rounded_offset counts floats (words when packed).
    BufferRange rounded;
    int64_t rounded_offset = 0;
    DType round_format = DType::Q8_0;
    bool round_packed = false;
};

// `workgroup` threads per row; 0 picks the device's default.
void record_rms_norm(Context& ctx, Sequence& seq, const RmsNormArgs& args, uint32_t workgroup = 0);

}  // namespace mllm::vk

#pragma once
// Rotary position embedding (shaders/rope.comp), both variants, positions read from a device
// buffer so a recorded step serves every position.
#include <cstdint>

#include "backends/vulkan/vk_context.h"
#include "graph/ir.h"

namespace mllm::vk {

struct RopeArgs {
    int64_t rows = 0;  // tokens
    int n_head = 0, head_dim = 0;
    graph::RopeMode mode = graph::RopeMode::Normal;
    float base = 10000, freq_scale = 1;
    BufferRange x, positions, y;  // x, y f32 [rows, n_head * head_dim]; positions i32 [rows]
    int64_t x_offset = 0, y_offset = 0, positions_offset = 0;  // elements
    // A second tensor rotated in the same dispatch (x2.buffer set): the keys beside the
    // queries, n_head2 heads, the same rows, positions and rotation. y2 must not overlap x.
    int n_head2 = 0;
    BufferRange x2, y2;
    int64_t x2_offset = 0, y2_offset = 0;
    // With a pair: the rotated keys and the values v [rows, n_head2 * head_dim] also appended to
    // a layer's f16 caches (k_cache.buffer set) as record_kv_store does, in the same dispatch.
    BufferRange v, k_cache, v_cache;
    int64_t v_offset = 0;
    int64_t n_ctx = 0;  // cache rows
};

void record_rope(Context& ctx, Sequence& seq, const RopeArgs& args);

// The ratio between neighbouring pairs' frequencies, base^(-2 / head_dim), computed on the host
// exactly as the CPU backend does, so both round the angles alike.
float rope_theta_scale(float base, int head_dim);

}  // namespace mllm::vk

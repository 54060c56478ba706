#include "backends/vulkan/ops/vk_rope.h"

#include <cmath>

#include "backends/vulkan/ops/vk_op_util.h"

namespace mllm::vk {

namespace {
// Mirrors the push constants of shaders/rope.comp.
struct RopePush {
    uint32_t rows, n_head, head_dim;
    uint32_t x_offset, y_offset, pos_offset;
    float freq_scale, theta_scale;
    uint32_t n_head2, x2_offset, y2_offset;
    uint32_t v_offset, n_ctx;
};
}  // namespace

float rope_theta_scale(float base, int head_dim) {
    return std::pow(base, -2.0f / static_cast<float>(head_dim));
}

void record_rope(Context& ctx, Sequence& seq, const RopeArgs& a) {
    constexpr const char* kOp = "rope";
    if (a.rows <= 0 || a.n_head <= 0 || a.head_dim <= 0 || a.head_dim % 2 != 0)
        fail("internal: Vulkan rope of ", a.rows, " rows, ", a.n_head, " heads of ", a.head_dim);
    const int64_t width = static_cast<int64_t>(a.n_head) * a.head_dim;
    need_bytes(a.x, 4 * (a.x_offset + a.rows * width), kOp, "input");
    need_bytes(a.y, 4 * (a.y_offset + a.rows * width), kOp, "output");
    need_bytes(a.positions, 4 * (a.positions_offset + a.rows), kOp, "positions");
    const bool pair = a.x2.buffer != VK_NULL_HANDLE;
    const int64_t width2 = static_cast<int64_t>(a.n_head2) * a.head_dim;
    if (pair) {
        if (a.n_head2 <= 0) fail("internal: Vulkan rope pair with ", a.n_head2, " heads");
        need_bytes(a.x2, 4 * (a.x2_offset + a.rows * width2), kOp, "second input");
        need_bytes(a.y2, 4 * (a.y2_offset + a.rows * width2), kOp, "second output");
    }
    const bool store = a.k_cache.buffer != VK_NULL_HANDLE;
    if (store) {
        if (!pair || a.n_ctx <= 0)
            fail("internal: Vulkan rope storing keys without a pair or a cache");
        need_bytes(a.v, 4 * (a.v_offset + a.rows * width2), kOp, "values");
        need_bytes(a.k_cache, 2 * a.n_ctx * width2, kOp, "k cache");
        need_bytes(a.v_cache, 2 * a.n_ctx * width2, kOp, "v cache");
    }
    const uint32_t workgroup = flat_workgroup(ctx.props());
    const uint32_t mode = a.mode == graph::RopeMode::Normal ? 0 : 1;
    const Pipeline& pipeline = ctx.pipelines().get({store  ? "rope_pair_store"
                                                    : pair ? "rope_pair"
                                                           : "rope",
                                                    store  ? 8u
                                                    : pair ? 5u
                                                           : 3u,
                                                    sizeof(RopePush),
                                                    {workgroup, mode}});
    const float theta_scale = rope_theta_scale(a.base, a.head_dim);
    const RopePush push{push_u32(a.rows, kOp, "rows"),
                        push_u32(a.n_head, kOp, "n_head"),
                        push_u32(a.head_dim, kOp, "head_dim"),
                        push_u32(a.x_offset, kOp, "x_offset"),
                        push_u32(a.y_offset, kOp, "y_offset"),
                        push_u32(a.positions_offset, kOp, "positions_offset"),
                        a.freq_scale,
                        theta_scale,
                        push_u32(pair ? a.n_head2 : 0, kOp, "n_head2"),
                        push_u32(a.x2_offset, kOp, "x2_offset"),
                        push_u32(a.y2_offset, kOp, "y2_offset"),
                        push_u32(a.v_offset, kOp, "v_offset"),
                        push_u32(a.n_ctx, kOp, "n_ctx")};
    // Invocations: a pair of elements each (STORE: a word of keys, then of values, each).
    const Groups g = flat_groups(
        ctx.props(), a.rows * (width + (pair ? width2 : 0) + (store ? width2 : 0)) / 2, workgroup);
    if (store) {
        seq.dispatch(pipeline, {a.x, a.positions, a.y, a.x2, a.y2, a.v, a.k_cache, a.v_cache}, push,
                     g);
    } else if (pair) {
        seq.dispatch(pipeline, {a.x, a.positions, a.y, a.x2, a.y2}, push, g);
    } else {
        seq.dispatch(pipeline, {a.x, a.positions, a.y}, push, g);
    }
}

}  // namespace mllm::vk

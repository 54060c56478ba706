#include "backends/vulkan/ops/vk_attention.h"

#include "backends/vulkan/ops/vk_op_util.h"

namespace mllm::vk {

namespace {
// Mirrors the push constants of shaders/attention.comp.
struct AttentionPush {
    uint32_t n_head, n_head_kv, width, n_ctx;
    uint32_t q_offset, o_offset, pos_offset;
    float scale;
};
constexpr uint32_t kTile = 128;  // keys scored per round: 512 bytes of shared memory
}  // namespace

void record_attention(Context& ctx, Sequence& seq, const AttentionArgs& a) {
    constexpr const char* kOp = "attention";
    if (a.rows <= 0 || a.n_head <= 0 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0 ||
        a.head_dim <= 0 || a.head_dim % 2 != 0 || a.head_dim > kVkMaxHeadDim || a.n_ctx <= 0)
        fail("internal: Vulkan attention with ", a.n_head, "/", a.n_head_kv, " heads of ",
             a.head_dim);
    const int64_t q_width = static_cast<int64_t>(a.n_head) * a.head_dim;
    const int64_t kv_width = static_cast<int64_t>(a.n_head_kv) * a.head_dim;
    need_bytes(a.q, 4 * (a.q_offset + a.rows * q_width), kOp, "q");
    need_bytes(a.out, 4 * (a.out_offset + a.rows * q_width), kOp, "output");
    need_bytes(a.positions, 4 * (a.positions_offset + a.rows), kOp, "positions");
    need_bytes(a.k_cache, 2 * a.n_ctx * kv_width, kOp, "k cache");
    need_bytes(a.v_cache, 2 * a.n_ctx * kv_width, kOp, "v cache");
    const DeviceProps& props = ctx.props();
    // One thread per output dimension where the device allows: a head of 64 takes 64 threads.
    const uint32_t workgroup =
        std::min<uint32_t>(std::max<uint32_t>(static_cast<uint32_t>(a.head_dim),
                                              std::max<uint32_t>(32, props.subgroup_size)),
                           props.max_workgroup_invocations);
    const Pipeline& pipeline =
        ctx.pipelines().get({"attention",
                             5,
                             sizeof(AttentionPush),
                             {workgroup, static_cast<uint32_t>(a.head_dim), kTile}});
    const AttentionPush push{push_u32(a.n_head, kOp, "n_head"),
                             push_u32(a.n_head_kv, kOp, "n_head_kv"),
                             push_u32(kv_width, kOp, "kv width"),
                             push_u32(a.n_ctx, kOp, "n_ctx"),
                             push_u32(a.q_offset, kOp, "q_offset"),
                             push_u32(a.out_offset, kOp, "out_offset"),
                             push_u32(a.positions_offset, kOp, "positions_offset"),
                             a.scale};
    Groups g;
    g.x = push_u32(a.n_head, kOp, "heads");
    g.y = push_u32(a.rows, kOp, "rows");
    seq.dispatch(pipeline, {a.q, a.positions, a.k_cache, a.v_cache, a.out}, push, g);
}

}  // namespace mllm::vk

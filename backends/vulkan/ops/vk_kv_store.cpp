#include "backends/vulkan/ops/vk_kv_store.h"

#include "backends/vulkan/ops/vk_op_util.h"

namespace mllm::vk {

namespace {
// Mirrors the push constants of shaders/kv_store.comp.
struct KvStorePush {
    uint32_t rows, width;
    uint32_t k_offset, v_offset, pos_offset;
    uint32_t n_ctx;
};
}  // namespace

void record_kv_store(Context& ctx, Sequence& seq, const KvStoreArgs& a) {
    constexpr const char* kOp = "kv_store";
    if (a.rows <= 0 || a.width <= 0 || a.width % 2 != 0 || a.n_ctx <= 0)
        fail("internal: Vulkan kv_store of ", a.rows, " rows of ", a.width);
    need_bytes(a.k, 4 * (a.k_offset + a.rows * a.width), kOp, "k");
    need_bytes(a.v, 4 * (a.v_offset + a.rows * a.width), kOp, "v");
    need_bytes(a.positions, 4 * (a.positions_offset + a.rows), kOp, "positions");
    need_bytes(a.k_cache, 2 * a.n_ctx * a.width, kOp, "k cache");
    need_bytes(a.v_cache, 2 * a.n_ctx * a.width, kOp, "v cache");
    const uint32_t workgroup = flat_workgroup(ctx.props());
    const Pipeline& pipeline =
        ctx.pipelines().get({"kv_store", 5, sizeof(KvStorePush), {workgroup}});
    const KvStorePush push{push_u32(a.rows, kOp, "rows"),
                           push_u32(a.width, kOp, "width"),
                           push_u32(a.k_offset, kOp, "k_offset"),
                           push_u32(a.v_offset, kOp, "v_offset"),
                           push_u32(a.positions_offset, kOp, "positions_offset"),
                           push_u32(a.n_ctx, kOp, "n_ctx")};
    seq.dispatch(pipeline, {a.k, a.v, a.positions, a.k_cache, a.v_cache}, push,
                 flat_groups(ctx.props(), a.rows * a.width / 2, workgroup));
}

}  // namespace mllm::vk

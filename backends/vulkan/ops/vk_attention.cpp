#include "backends/vulkan/ops/vk_attention.h"

#include <algorithm>
#include <string>

#include "backends/vulkan/ops/vk_op_util.h"
#include "backends/vulkan/ops/vk_round_activations.h"

namespace mllm::vk {

namespace {
// Mirrors the push constants of shaders/attention.comp.
struct AttentionPush {
    uint32_t n_head, n_head_kv, width, n_ctx;
    uint32_t q_offset, o_offset, pos_offset;
    float scale;
};
constexpr uint32_t kTile = 128;  // keys scored per round: 512 bytes of shared memory
// Mirrors the push constants of shaders/attention.comp with ROUND.
struct AttentionRoundPush {
    AttentionPush common;
    uint32_t r_offset;
};

// Mirrors the push constants of shaders/attention_rows.comp.
struct AttentionRowsPush {
    AttentionPush common;
    uint32_t rows;
    uint32_t r_offset;
};
constexpr int kQ8Block = 32;
// Tokens per workgroup of the CPU variant: a few of lavapipe's 8-lane batches, so that a short
// prompt still spreads its heads (workgroups along y) over the CPU's threads.
constexpr uint32_t kRowsWorkgroup = 16;

// Query heads per invocation of the CPU variant: as many of one KV head's group as keep the
// queries and accumulators (2 * heads * head_dim floats per token) within a few hundred
// registers' worth, since every cache load then serves all of them.
uint32_t rows_heads(const AttentionArgs& a) {
    const int group = a.n_head / a.n_head_kv;
    int heads = std::max(1, std::min(group, 256 / a.head_dim));
    while (group % heads != 0) --heads;
    return static_cast<uint32_t>(heads);
}
}  // namespace

bool attention_rows_kernel(const DeviceProps& device) {
    return device.cpu_kernels || !device.subgroup_reductions();
}

bool attention_rounds(const DeviceProps& device, int head_dim, bool packed) {
    return head_dim % kQ8Block == 0 && !(packed && attention_rows_kernel(device));
}

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
    const AttentionPush push{push_u32(a.n_head, kOp, "n_head"),
                             push_u32(a.n_head_kv, kOp, "n_head_kv"),
                             push_u32(kv_width, kOp, "kv width"),
                             push_u32(a.n_ctx, kOp, "n_ctx"),
                             push_u32(a.q_offset, kOp, "q_offset"),
                             push_u32(a.out_offset, kOp, "out_offset"),
                             push_u32(a.positions_offset, kOp, "positions_offset"),
                             a.scale};
    const bool round = a.rounded.buffer != VK_NULL_HANDLE;
    const bool rows_kernel =
        a.cpu_layout == 1 || (a.cpu_layout < 0 && attention_rows_kernel(props));
    if (round) {
        if (a.head_dim % kQ8Block != 0 || (a.round_packed && rows_kernel))
            fail("internal: Vulkan attention cannot round its output here");
        const int64_t r_width = a.round_packed ? q8_0_packed_words(q_width) : q_width;
        need_bytes(a.rounded, 4 * (a.rounded_offset + a.rows * r_width), kOp, "rounded output");
    }
    if (rows_kernel) {
        // lavapipe emulates barriers and shared memory slowly: one invocation per (token, head)
        // needs neither (nor subgroup reductions, for drivers with those turned off).
        // Decode: one query head an invocation, the heads along the SIMD lanes, in two
        // workgroups for lavapipe's two threads. Prompts: tokens along the lanes, each cache
        // load serving several heads of one KV head and two neighbouring tokens (four spill too
        // much).
        const bool decode = a.rows == 1;
        const uint32_t workgroup =
            decode ? std::clamp<uint32_t>((static_cast<uint32_t>(a.n_head) + 1) / 2, 1,
                                          std::min(8u, props.max_workgroup_invocations))
                   : std::min(kRowsWorkgroup, props.max_workgroup_invocations);
        const uint32_t heads = decode ? 1u : rows_heads(a);
        const uint32_t tokens = !decode && heads * a.head_dim <= 256 ? 2 : 1;
        // The caches through texel buffers where the device reads them so and each is whole
        // texels at the texel alignment.
        const bool texel = a.texel_cache != 0 && texel_reads(props) &&
                           texel_binding_problem(props, a.k_cache).empty() &&
                           texel_binding_problem(props, a.v_cache).empty();
        PipelineDesc desc{
            std::string(texel ? "attention_rows_tx" : "attention_rows") + (round ? "_round" : ""),
            round ? 6u : 5u,
            sizeof(AttentionRowsPush),
            {workgroup, static_cast<uint32_t>(a.head_dim), heads, tokens, decode ? 1u : 0u}};
        if (texel) desc.texel_buffers = (1u << 2) | (1u << 3);
        const Pipeline& pipeline = ctx.pipelines().get(desc);
        const AttentionRowsPush rows_push{push, push_u32(a.rows, kOp, "rows"),
                                          push_u32(a.rounded_offset, kOp, "rounded_offset")};
        Groups g;
        g.x = decode ? push_u32((a.n_head + workgroup - 1) / workgroup, kOp, "head groups")
                     : push_u32((a.rows + workgroup * tokens - 1) / (workgroup * tokens), kOp,
                                "row groups");
        g.y = decode ? 1u : push_u32(a.n_head / heads, kOp, "heads");
        if (g.x > props.max_workgroup_count[0] || g.y > props.max_workgroup_count[1])
            fail("Vulkan attention of ", a.rows, " tokens x ", a.n_head,
                 " heads exceeds the device's workgroup limits");
        if (round) {
            seq.dispatch(pipeline, {a.q, a.positions, a.k_cache, a.v_cache, a.out, a.rounded},
                         rows_push, g);
        } else {
            seq.dispatch(pipeline, {a.q, a.positions, a.k_cache, a.v_cache, a.out}, rows_push, g);
        }
        return;
    }
    // One thread per output dimension where the device allows: a head of 64 takes 64 threads.
    const uint32_t workgroup =
        std::min<uint32_t>(std::max<uint32_t>(static_cast<uint32_t>(a.head_dim),
                                              std::max<uint32_t>(32, props.subgroup_size)),
                           props.max_workgroup_invocations);
    PipelineDesc desc{
        round ? "attention_round" : "attention",
        round ? 6u : 5u,
        static_cast<uint32_t>(round ? sizeof(AttentionRoundPush) : sizeof(AttentionPush)),
        {workgroup, static_cast<uint32_t>(a.head_dim), kTile}};
    if (round) desc.spec.push_back(a.round_packed ? 2u : 0u);  // quant8.glsl's FORMAT
    const Pipeline& pipeline = ctx.pipelines().get(desc);
    Groups g;
    g.x = push_u32(a.n_head, kOp, "heads");
    g.y = push_u32(a.rows, kOp, "rows");
    if (!round) {
        seq.dispatch(pipeline, {a.q, a.positions, a.k_cache, a.v_cache, a.out}, push, g);
        return;
    }
    const AttentionRoundPush round_push{push, push_u32(a.rounded_offset, kOp, "rounded_offset")};
    seq.dispatch(pipeline, {a.q, a.positions, a.k_cache, a.v_cache, a.out, a.rounded}, round_push,
                 g);
}

}  // namespace mllm::vk

#include "backends/vulkan/ops/vk_embed.h"

#include <algorithm>
#include <limits>

#include "backends/vulkan/ops/vk_op_util.h"
#include "core/error.h"

namespace mllm::vk {

namespace {

// Mirrors the push constants of shaders/embed.comp.
struct EmbedPush {
    uint32_t cols, tokens;
    uint32_t table_offset, table_rows;
    uint32_t slice_begin, slice_rows;
    uint32_t ids_offset;
    uint32_t y_offset, y_stride;
};

const char* shader_name(DType t) {
    switch (t) {
        case DType::F32:
            return "embed_f32";
        case DType::F16:
            return "embed_f16";
        case DType::BF16:
            return "embed_bf16";
        case DType::Q8_0:
            return "embed_q8_0";
        case DType::Q4_0:
            return "embed_q4_0";
        case DType::Q4_1:
            return "embed_q4_1";
        case DType::Q5_0:
            return "embed_q5_0";
        case DType::Q4_K:
            return "embed_q4_k";
        case DType::Q5_K:
            return "embed_q5_k";
        case DType::Q6_K:
            return "embed_q6_k";
        default:
            return nullptr;
    }
}

}  // namespace

bool embed_supports(DType table_type) {
    return shader_name(table_type) != nullptr;
}

void record_embed(Context& ctx, Sequence& seq, const EmbedArgs& a, EmbedConfig overrides) {
    constexpr const char* kOp = "embed";
    const char* shader = shader_name(a.table_type);
    if (shader == nullptr)
        fail("the Vulkan backend has no embedding lookup for ", dtype_name(a.table_type),
             " tables");
    if (a.cols <= 0 || a.rows <= 0 || a.table_rows <= 0)
        fail("internal: Vulkan embed of ", a.rows, " tokens from a table of ", a.table_rows,
             " rows of ", a.cols);
    const int64_t block = dtype_traits(a.table_type).block_size;
    if (a.cols % block != 0)
        fail("Vulkan embed: ", a.cols, " columns is not a multiple of the ",
             dtype_name(a.table_type), " block (", block, ")");
    if (a.table_offset < 0 || a.table_offset % 2 != 0)
        fail("internal: Vulkan embed table offset not 2-byte aligned");
    const int64_t y_stride = a.y_stride < 0 ? a.cols : a.y_stride;
    const int64_t rb = static_cast<int64_t>(row_bytes(a.table_type, a.cols));
    // The shader reads whole 32-bit words: the table's range covers the last one.
    const int64_t table_end =
        static_cast<int64_t>(a.table.offset) + a.table_offset + a.table_rows * rb;
    need_bytes(a.table, (table_end + 3) / 4 * 4 - static_cast<int64_t>(a.table.offset), kOp,
               "table", 2);
    need_bytes(a.ids, 4 * (a.ids_offset + a.rows), kOp, "ids", 4);
    need_bytes(a.y, 4 * (a.y_offset + (a.rows - 1) * y_stride + a.cols), kOp, "output", 4);

    const DeviceProps& props = ctx.props();
    const uint32_t workgroup = overrides.workgroup != 0
                                   ? overrides.workgroup
                                   : std::min(std::max<uint32_t>(64, props.subgroup_size),
                                              props.max_workgroup_invocations);
    const Pipeline& pipeline = ctx.pipelines().get({shader, 3, sizeof(EmbedPush), {workgroup}});

    // Table rows per dispatch so the slice fits one binding; tokens so the output part does
    // and the token count fits the dispatch's y limit.
    const uint64_t limit = binding::limit(props, overrides.max_binding);
    const int64_t slice_rows =
        std::min(a.table_rows, binding::items_per_binding(props, limit, rb, rb, "table row"));
    const int64_t tokens_per = std::min(
        {a.rows, binding::items_per_binding(props, limit, 4 * a.cols, 4 * y_stride, "output row"),
         static_cast<int64_t>(props.max_workgroup_count[1])});
    // Chunks of 8 elements, and one more for the tail of a float row.
    const int64_t units = (a.cols + 7) / 8;
    const uint32_t groups_x = push_u32((units + workgroup - 1) / workgroup, kOp, "workgroups");

    for (int64_t s0 = 0; s0 < a.table_rows; s0 += slice_rows) {
        const int64_t sr = std::min(slice_rows, a.table_rows - s0);
        uint64_t table_skip = 0;
        const BufferRange table = binding::part(
            props, a.table, static_cast<uint64_t>(a.table_offset + s0 * rb), sr * rb, table_skip);
        for (int64_t t0 = 0; t0 < a.rows; t0 += tokens_per) {
            const int64_t nt = std::min(tokens_per, a.rows - t0);
            uint64_t ids_skip = 0, y_skip = 0;
            const BufferRange ids =
                binding::part(props, a.ids, 4 * (a.ids_offset + t0), 4 * nt, ids_skip);
            const BufferRange y = binding::part(props, a.y, 4 * (a.y_offset + t0 * y_stride),
                                                4 * ((nt - 1) * y_stride + a.cols), y_skip);
            const EmbedPush push{push_u32(a.cols, kOp, "cols"),
                                 push_u32(nt, kOp, "tokens"),
                                 push_u32(static_cast<int64_t>(table_skip), kOp, "table_offset"),
                                 push_u32(a.table_rows, kOp, "table_rows"),
                                 push_u32(s0, kOp, "slice_begin"),
                                 push_u32(sr, kOp, "slice_rows"),
                                 push_u32(static_cast<int64_t>(ids_skip / 4), kOp, "ids_offset"),
                                 push_u32(static_cast<int64_t>(y_skip / 4), kOp, "y_offset"),
                                 push_u32(y_stride, kOp, "y_stride")};
            seq.dispatch(pipeline, {table, ids, y}, push, {groups_x, static_cast<uint32_t>(nt), 1});
        }
    }
}

}  // namespace mllm::vk

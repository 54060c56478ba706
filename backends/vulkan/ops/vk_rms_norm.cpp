#include "backends/vulkan/ops/vk_rms_norm.h"

#include <algorithm>
#include <limits>

#include "backends/vulkan/ops/vk_op_util.h"
#include "core/error.h"

namespace mllm::vk {

namespace {

// Mirrors the push constants of shaders/rms_norm.comp.
struct RmsNormPush {
    uint32_t rows, cols;
    uint32_t x_offset, x_stride;
    uint32_t w_offset;
    uint32_t y_offset, y_stride;
    uint32_t has_weight;
    float eps;
};

}  // namespace

void record_rms_norm(Context& ctx, Sequence& seq, const RmsNormArgs& a, uint32_t workgroup) {
    constexpr const char* kOp = "rms_norm";
    if (a.rows <= 0 || a.cols <= 0) fail("internal: Vulkan rms_norm of ", a.rows, " x ", a.cols);
    const int64_t x_stride = a.x_stride < 0 ? a.cols : a.x_stride;
    const int64_t y_stride = a.y_stride < 0 ? a.cols : a.y_stride;
    const bool has_weight = a.w.buffer != VK_NULL_HANDLE;
    need_bytes(a.x, 4 * (a.x_offset + (a.rows - 1) * x_stride + a.cols), kOp, "input");
    need_bytes(a.y, 4 * (a.y_offset + (a.rows - 1) * y_stride + a.cols), kOp, "output");
    if (has_weight) need_bytes(a.w, 4 * (a.w_offset + a.cols), kOp, "weight");

    const DeviceProps& props = ctx.props();
    if (workgroup == 0) workgroup = flat_workgroup(props);  // a few subgroups for a long row
    // Reductions through shared memory where subgroup arithmetic is turned off.
    const Pipeline& pipeline =
        ctx.pipelines().get({props.subgroup_reductions() ? "rms_norm" : "rms_norm_shared",
                             3,
                             sizeof(RmsNormPush),
                             {workgroup}});
    const RmsNormPush push{push_u32(a.rows, kOp, "rows"),
                           push_u32(a.cols, kOp, "cols"),
                           push_u32(a.x_offset, kOp, "x_offset"),
                           push_u32(x_stride, kOp, "x_stride"),
                           push_u32(a.w_offset, kOp, "w_offset"),
                           push_u32(a.y_offset, kOp, "y_offset"),
                           push_u32(y_stride, kOp, "y_stride"),
                           has_weight ? 1u : 0u,
                           a.eps};
    const uint32_t* max = props.max_workgroup_count;
    Groups g;
    g.x = static_cast<uint32_t>(std::min<int64_t>(a.rows, max[0]));
    g.z = static_cast<uint32_t>((a.rows + g.x - 1) / g.x);
    seq.dispatch(pipeline, {a.x, has_weight ? a.w : a.x, a.y}, push, g);
}

}  // namespace mllm::vk

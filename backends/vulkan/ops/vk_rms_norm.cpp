#include "backends/vulkan/ops/vk_rms_norm.h"

#include <algorithm>
#include <limits>

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

uint32_t u32(int64_t v, const char* what) {
    if (v < 0 || v > std::numeric_limits<uint32_t>::max())
        fail("Vulkan rms_norm: ", what, " = ", v, " is out of range");
    return static_cast<uint32_t>(v);
}

void need(const BufferRange& r, int64_t floats, const char* what) {
    if (r.buffer == VK_NULL_HANDLE || static_cast<int64_t>(r.size) < 4 * floats)
        fail("internal: Vulkan rms_norm ", what, " binding holds ", r.size, " bytes, needs ",
             4 * floats);
}

}  // namespace

void record_rms_norm(Context& ctx, Sequence& seq, const RmsNormArgs& a, uint32_t workgroup) {
    if (a.rows <= 0 || a.cols <= 0) fail("internal: Vulkan rms_norm of ", a.rows, " x ", a.cols);
    const int64_t x_stride = a.x_stride < 0 ? a.cols : a.x_stride;
    const int64_t y_stride = a.y_stride < 0 ? a.cols : a.y_stride;
    const bool has_weight = a.w.buffer != VK_NULL_HANDLE;
    need(a.x, a.x_offset + (a.rows - 1) * x_stride + a.cols, "input");
    need(a.y, a.y_offset + (a.rows - 1) * y_stride + a.cols, "output");
    if (has_weight) need(a.w, a.w_offset + a.cols, "weight");

    const DeviceProps& props = ctx.props();
    if (workgroup == 0)  // enough threads for a long row, a few subgroups
        workgroup =
            std::min(std::max<uint32_t>(64, props.subgroup_size), props.max_workgroup_invocations);
    const Pipeline& pipeline =
        ctx.pipelines().get({"rms_norm", 3, sizeof(RmsNormPush), {workgroup}});
    const RmsNormPush push{
        u32(a.rows, "rows"),       u32(a.cols, "cols"),         u32(a.x_offset, "x_offset"),
        u32(x_stride, "x_stride"), u32(a.w_offset, "w_offset"), u32(a.y_offset, "y_offset"),
        u32(y_stride, "y_stride"), has_weight ? 1u : 0u,        a.eps};
    const uint32_t* max = props.max_workgroup_count;
    Groups g;
    g.x = static_cast<uint32_t>(std::min<int64_t>(a.rows, max[0]));
    g.z = static_cast<uint32_t>((a.rows + g.x - 1) / g.x);
    seq.dispatch(pipeline, {a.x, has_weight ? a.w : a.x, a.y}, push, g);
}

}  // namespace mllm::vk

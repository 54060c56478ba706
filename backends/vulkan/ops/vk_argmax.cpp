#include "backends/vulkan/ops/vk_argmax.h"

#include <algorithm>

#include "backends/vulkan/ops/vk_op_util.h"
#include "core/error.h"

namespace mllm::vk {
namespace {

// Mirrors the push constants of shaders/argmax.comp.
struct ArgmaxPush {
    uint32_t rows, cols, x_offset, x_stride, y_offset;
};

}  // namespace

void record_argmax(Context& ctx, Sequence& seq, const ArgmaxArgs& a, uint32_t workgroup) {
    constexpr const char* kOp = "argmax";
    if (a.rows <= 0 || a.cols <= 0) fail("internal: Vulkan argmax of ", a.rows, " x ", a.cols);
    const int64_t x_stride = a.x_stride < 0 ? a.cols : a.x_stride;
    need_bytes(a.x, 4 * (a.x_offset + (a.rows - 1) * x_stride + a.cols), kOp, "input");
    need_bytes(a.y, 4 * (a.y_offset + a.rows), kOp, "output");

    const DeviceProps& props = ctx.props();
    // A long row (a vocabulary) over many threads on GPUs: the scan dominates, the reduction is
    // short. CPU devices run a workgroup as a few SIMD batches and pay for each barrier.
    if (workgroup == 0)
        workgroup = props.cpu_kernels ? flat_workgroup(props)
                                      : std::min(256u, props.max_workgroup_invocations);
    const Pipeline& pipeline = ctx.pipelines().get({"argmax", 2, sizeof(ArgmaxPush), {workgroup}});
    const ArgmaxPush push{push_u32(a.rows, kOp, "rows"), push_u32(a.cols, kOp, "cols"),
                          push_u32(a.x_offset, kOp, "x_offset"),
                          push_u32(x_stride, kOp, "x_stride"),
                          push_u32(a.y_offset, kOp, "y_offset")};
    Groups g;
    g.x = static_cast<uint32_t>(std::min<int64_t>(a.rows, props.max_workgroup_count[0]));
    g.z = static_cast<uint32_t>((a.rows + g.x - 1) / g.x);
    seq.dispatch(pipeline, {a.x, a.y}, push, g);
}

}  // namespace mllm::vk

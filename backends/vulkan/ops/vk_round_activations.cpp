#include "backends/vulkan/ops/vk_round_activations.h"

#include "backends/vulkan/ops/vk_op_util.h"

namespace mllm::vk {

namespace {
// Mirrors the push constants of shaders/round_activations.comp.
struct RoundPush {
    uint32_t rows, cols;
    uint32_t x_offset, x_stride, y_offset, y_stride;
};
}  // namespace

void record_round_activations(Context& ctx, Sequence& seq, const RoundActivationsArgs& a) {
    constexpr const char* kOp = "round_activations";
    if ((a.format != DType::Q8_0 && a.format != DType::Q8_K) ||
        (a.packed && a.format != DType::Q8_0))
        fail("internal: Vulkan activations rounded to ", dtype_name(a.format),
             a.packed ? " (packed)" : "");
    const int64_t block = a.format == DType::Q8_0 ? 32 : 256;
    if (a.rows <= 0 || a.cols <= 0 || a.cols % block != 0)
        fail("internal: Vulkan round_activations of ", a.rows, " x ", a.cols);
    need_bytes(a.x, 4 * (a.x_offset + a.rows * a.cols), kOp, "input");
    const int64_t y_stride = a.packed ? q8_0_packed_words(a.cols) : a.cols;
    need_bytes(a.y, 4 * (a.y_offset + a.rows * y_stride), kOp, "output");
    const uint32_t workgroup = flat_workgroup(ctx.props());
    const uint32_t format = a.packed ? 2 : a.format == DType::Q8_0 ? 0 : 1;
    const Pipeline& pipeline =
        ctx.pipelines().get({"round_activations", 2, sizeof(RoundPush), {workgroup, format}});
    const RoundPush push{
        push_u32(a.rows, kOp, "rows"),         push_u32(a.cols, kOp, "cols"),
        push_u32(a.x_offset, kOp, "x_offset"), push_u32(a.cols, kOp, "x_stride"),
        push_u32(a.y_offset, kOp, "y_offset"), push_u32(y_stride, kOp, "y_stride")};
    seq.dispatch(pipeline, {a.x, a.y}, push,
                 flat_groups(ctx.props(), a.rows * a.cols / block, workgroup));
}

}  // namespace mllm::vk

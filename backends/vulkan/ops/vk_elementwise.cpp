#include "backends/vulkan/ops/vk_elementwise.h"

#include "backends/vulkan/ops/vk_op_util.h"
#include "backends/vulkan/ops/vk_round_activations.h"

namespace mllm::vk {

namespace {
// Mirrors the push constants of shaders/elementwise.comp.
struct ElementwisePush {
    uint32_t n, cols;
    uint32_t a_offset, b_offset, y_offset;
    uint32_t b_broadcast;
    uint32_t r_offset;
};
}  // namespace

void record_elementwise(Context& ctx, Sequence& seq, const ElementwiseArgs& a) {
    constexpr const char* kOp = "elementwise";
    if (a.n <= 0 || a.cols <= 0 || a.n % a.cols != 0)
        fail("internal: Vulkan elementwise over ", a.n, " elements of rows of ", a.cols);
    const bool uses_b = a.op != Elementwise::Silu && a.op != Elementwise::Copy;
    need_bytes(a.a, 4 * (a.a_offset + a.n), kOp, "a");
    need_bytes(a.y, 4 * (a.y_offset + a.n), kOp, "y");
    if (uses_b) need_bytes(a.b, 4 * (a.b_offset + (a.b_broadcast ? a.cols : a.n)), kOp, "b");
    const bool round = a.rounded.buffer != VK_NULL_HANDLE;
    const int64_t block = a.round_format == DType::Q8_K ? 256 : 32;
    if (round) {
        if (a.op != Elementwise::SwiGlu || a.b_broadcast ||
            (a.round_format != DType::Q8_0 && a.round_format != DType::Q8_K) ||
            (a.round_packed && a.round_format != DType::Q8_0) || a.cols % block != 0)
            fail("internal: Vulkan elementwise rounding of ", a.cols, " columns to ",
                 dtype_name(a.round_format));
        const int64_t row = a.round_packed ? q8_0_packed_words(a.cols) : a.cols;
        need_bytes(a.rounded, 4 * (a.rounded_offset + a.n / a.cols * row), kOp, "rounded");
    }
    const uint32_t workgroup = flat_workgroup(ctx.props());
    const uint32_t format = a.round_packed ? 2 : a.round_format == DType::Q8_K ? 1 : 0;
    PipelineDesc desc{round ? "elementwise_round" : "elementwise",
                      round ? 4u : 3u,
                      sizeof(ElementwisePush),
                      {workgroup, static_cast<uint32_t>(a.op)}};
    if (round) desc.spec.push_back(format);
    const Pipeline& pipeline = ctx.pipelines().get(desc);
    const ElementwisePush push{push_u32(a.n, kOp, "n"),
                               push_u32(a.cols, kOp, "cols"),
                               push_u32(a.a_offset, kOp, "a_offset"),
                               push_u32(uses_b ? a.b_offset : 0, kOp, "b_offset"),
                               push_u32(a.y_offset, kOp, "y_offset"),
                               a.b_broadcast ? 1u : 0u,
                               push_u32(a.rounded_offset, kOp, "rounded_offset")};
    if (round) {
        seq.dispatch(pipeline, {a.a, a.b, a.y, a.rounded}, push,
                     flat_groups(ctx.props(), a.n / block, workgroup));
    } else {
        seq.dispatch(pipeline, {a.a, uses_b ? a.b : a.a, a.y}, push,
                     flat_groups(ctx.props(), a.n, workgroup));
    }
}

}  // namespace mllm::vk

#include "backends/vulkan/ops/vk_rms_norm.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "backends/vulkan/ops/vk_op_util.h"
#include "backends/vulkan/ops/vk_round_activations.h"
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
    uint32_t b_offset, b_stride;
    uint32_t s_offset, s_stride;
    uint32_t r_offset, r_stride;
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
    const bool add = a.b.buffer != VK_NULL_HANDLE;
    const int64_t b_stride = a.b_stride < 0 ? a.cols : a.b_stride;
    const int64_t s_stride = a.sum_stride < 0 ? a.cols : a.sum_stride;
    if (add) {
        need_bytes(a.b, 4 * (a.b_offset + (a.rows - 1) * b_stride + a.cols), kOp, "addend");
        need_bytes(a.sum, 4 * (a.sum_offset + (a.rows - 1) * s_stride + a.cols), kOp, "sum");
    }

    const bool round = a.rounded.buffer != VK_NULL_HANDLE;
    int64_t r_stride = 0;
    if (round) {
        const int64_t block = a.round_format == DType::Q8_K ? 256 : 32;
        if ((a.round_format != DType::Q8_0 && a.round_format != DType::Q8_K) ||
            (a.round_packed && a.round_format != DType::Q8_0) || a.cols % block != 0)
            fail("internal: Vulkan rms_norm rounded to ", dtype_name(a.round_format), " over ",
                 a.cols, " columns");
        r_stride = a.round_packed ? q8_0_packed_words(a.cols) : a.cols;
        need_bytes(a.rounded, 4 * (a.rounded_offset + a.rows * r_stride), kOp, "rounded");
    }

    const DeviceProps& props = ctx.props();
    if (workgroup == 0) workgroup = flat_workgroup(props);  // a few subgroups for a long row
    // Reductions through shared memory where subgroup arithmetic is turned off.
    const std::string shader = std::string(add ? "rms_norm_add" : "rms_norm") +
                               (round ? "_round" : "") +
                               (props.subgroup_reductions() ? "" : "_shared");
    const uint32_t format = a.round_packed ? 2 : a.round_format == DType::Q8_K ? 1 : 0;
    PipelineDesc desc{shader,
                      (add ? 5u : 3u) + (round ? 1u : 0u),
                      static_cast<uint32_t>(sizeof(RmsNormPush)),
                      {workgroup}};
    if (round) desc.spec.push_back(format);
    const Pipeline& pipeline = ctx.pipelines().get(desc);
    const RmsNormPush push{push_u32(a.rows, kOp, "rows"),
                           push_u32(a.cols, kOp, "cols"),
                           push_u32(a.x_offset, kOp, "x_offset"),
                           push_u32(x_stride, kOp, "x_stride"),
                           push_u32(a.w_offset, kOp, "w_offset"),
                           push_u32(a.y_offset, kOp, "y_offset"),
                           push_u32(y_stride, kOp, "y_stride"),
                           has_weight ? 1u : 0u,
                           a.eps,
                           push_u32(a.b_offset, kOp, "b_offset"),
                           push_u32(b_stride, kOp, "b_stride"),
                           push_u32(a.sum_offset, kOp, "sum_offset"),
                           push_u32(s_stride, kOp, "sum_stride"),
                           push_u32(a.rounded_offset, kOp, "rounded_offset"),
                           push_u32(r_stride, kOp, "rounded_stride")};
    const uint32_t* max = props.max_workgroup_count;
    Groups g;
    g.x = static_cast<uint32_t>(std::min<int64_t>(a.rows, max[0]));
    g.z = static_cast<uint32_t>((a.rows + g.x - 1) / g.x);
    std::vector<BufferRange> bindings = {a.x, has_weight ? a.w : a.x, a.y};
    if (add) bindings.insert(bindings.end(), {a.b, a.sum});
    if (round) bindings.push_back(a.rounded);
    seq.dispatch(pipeline, bindings, &push, sizeof(push), g);
}

}  // namespace mllm::vk

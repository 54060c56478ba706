#include "backends/vulkan/ops/vk_matmul.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace mllm::vk {

namespace {

// Mirrors the push constants of shaders/matmul.comp.
struct MatMulPush {
    uint32_t m, k, n;
    uint32_t w_offset;
    uint32_t x_offset, x_stride;
    uint32_t y_offset, y_stride;
};

const char* shader_name(DType t) {
    switch (t) {
        case DType::F32:
            return "matmul_f32";
        case DType::Q8_0:
            return "matmul_q8_0";
        case DType::Q4_0:
            return "matmul_q4_0";
        default:
            return nullptr;
    }
}

uint32_t u32(int64_t v, const char* what) {
    if (v < 0 || v > std::numeric_limits<uint32_t>::max())
        fail("Vulkan matmul: ", what, " = ", v, " is out of range");
    return static_cast<uint32_t>(v);
}

void need(const BufferRange& r, int64_t bytes, const char* what) {
    if (r.buffer == VK_NULL_HANDLE || static_cast<int64_t>(r.size) < bytes)
        fail("internal: Vulkan matmul ", what, " binding holds ", r.size, " bytes, needs ", bytes);
}

}  // namespace

bool matmul_supports(DType weight_type) {
    return shader_name(weight_type) != nullptr;
}

MatMulConfig matmul_config(const DeviceProps& device, DType, int64_t n, MatMulConfig o) {
    MatMulConfig c;
    // A few subgroups per workgroup (at least 32 threads), within the device's limit.
    c.workgroup = o.workgroup != 0 ? o.workgroup
                                   : std::min(std::max<uint32_t>(32, device.subgroup_size),
                                              device.max_workgroup_invocations);
    c.rows = o.rows != 0 ? o.rows : 2;
    // Each weight chunk is dequantized once for this many tokens (a real tiled GEMM for long
    // prefills is a later step).
    c.tokens =
        o.tokens != 0 ? o.tokens : (n >= 4 ? 4 : static_cast<uint32_t>(std::max<int64_t>(n, 1)));
    return c;
}

void record_matmul(Context& ctx, Sequence& seq, const MatMulArgs& a, MatMulConfig overrides) {
    const char* shader = shader_name(a.weight_type);
    if (shader == nullptr)
        fail("the Vulkan backend has no matmul for ", dtype_name(a.weight_type), " weights");
    if (a.m <= 0 || a.k <= 0 || a.n <= 0)
        fail("internal: Vulkan matmul of shape m=", a.m, " k=", a.k, " n=", a.n);
    const int64_t block = dtype_traits(a.weight_type).block_size;
    if (a.k % block != 0)
        fail("Vulkan matmul: k = ", a.k, " is not a multiple of the ", dtype_name(a.weight_type),
             " block (", block, ")");
    if (a.w_offset % 4 != 0) fail("internal: Vulkan matmul weight offset not 4-byte aligned");
    const int64_t x_stride = a.x_stride < 0 ? a.k : a.x_stride;
    const int64_t y_stride = a.y_stride < 0 ? a.m : a.y_stride;

    // The shader reads whole 32-bit words: the weights' binding covers them rounded up to 4.
    const int64_t w_bytes = a.w_offset + a.m * static_cast<int64_t>(row_bytes(a.weight_type, a.k));
    need(a.w, (w_bytes + 3) / 4 * 4, "weight");
    need(a.x, 4 * (a.x_offset + (a.n - 1) * x_stride + a.k), "input");
    need(a.y, 4 * (a.y_offset + (a.n - 1) * y_stride + a.m), "output");

    const MatMulConfig c = matmul_config(ctx.props(), a.weight_type, a.n, overrides);
    const Pipeline& pipeline =
        ctx.pipelines().get({shader, 3, sizeof(MatMulPush), {c.workgroup, c.rows, c.tokens}});
    const MatMulPush push{u32(a.m, "m"),
                          u32(a.k, "k"),
                          u32(a.n, "n"),
                          u32(a.w_offset, "w_offset"),
                          u32(a.x_offset, "x_offset"),
                          u32(x_stride, "x_stride"),
                          u32(a.y_offset, "y_offset"),
                          u32(y_stride, "y_stride")};

    // Row groups fill x up to the device's limit and continue in z.
    const uint32_t* max = ctx.props().max_workgroup_count;
    const int64_t row_groups = (a.m + c.rows - 1) / c.rows;
    Groups g;
    g.x = static_cast<uint32_t>(std::min<int64_t>(row_groups, max[0]));
    g.z = static_cast<uint32_t>((row_groups + g.x - 1) / g.x);
    g.y = u32((a.n + c.tokens - 1) / c.tokens, "token groups");
    seq.dispatch(pipeline, {a.w, a.x, a.y}, push, g);
}

}  // namespace mllm::vk

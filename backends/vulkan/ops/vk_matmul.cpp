#include "backends/vulkan/ops/vk_matmul.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "backends/vulkan/ops/vk_op_util.h"
#include "backends/vulkan/ops/vk_rope.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "core/error.h"
#include "core/fp16.h"

namespace mllm::vk {

namespace {

// Mirrors the push constants of shaders/matmul.comp.
struct MatMulPush {
    uint32_t m, k, n;
    uint32_t w_offset;
    uint32_t x_offset, x_stride;
    uint32_t y_offset, y_stride;
    uint32_t bias_offset, has_bias;
    uint32_t row1, y_offset1, y_stride1;  // MatMulArgs::more_outputs (~0u: none)
    uint32_t row2, y_offset2, y_stride2;
    float eps;  // MatMulArgs::norm_in
    uint32_t partial_offset, partial_stride, partial_count;
    uint32_t weighted_offset, weighted_stride;  // MatMulArgs::norm_out
    uint32_t head_dim, pos_offset, n_ctx;       // MatMulArgs::rope
    float freq_scale, theta_scale;
};

const char* shader_name(DType t) {
    switch (t) {
        case DType::F32:
            return "matmul_f32";
        case DType::F16:
            return "matmul_f16";
        case DType::BF16:
            return "matmul_bf16";
        case DType::Q8_0:
            return "matmul_q8_0";
        case DType::Q4_0:
            return "matmul_q4_0";
        case DType::Q4_1:
            return "matmul_q4_1";
        case DType::Q5_0:
            return "matmul_q5_0";
        case DType::Q4_K:
            return "matmul_q4_k";
        case DType::Q5_K:
            return "matmul_q5_k";
        case DType::Q6_K:
            return "matmul_q6_k";
        default:
            return nullptr;
    }
}

// The repacked variants (matmul.comp with REPACKED): Q4_0 and Q8_0 only.
const char* repacked_shader_name(DType t) {
    switch (t) {
        case DType::Q8_0:
            return "matmul_q8_0_repacked";
        case DType::Q4_0:
            return "matmul_q4_0_repacked";
        default:
            return nullptr;
    }
}

// The tiled GEMM's workgroup and the shared memory its two tiles take (matmul_tiled.comp).
constexpr uint32_t kTiledThreads = 256;
constexpr uint32_t kTiledShared = 2 * 128 * 32 * 4;
constexpr int64_t kTileRows = 32, kTileTokens = 32;

// The row-per-invocation kernels' uniform-buffer input (the _ux variants): vec4 xu[4096].
constexpr uint64_t kUniformInputBytes = 65536;

// Repacked Q4_0: pairs of rows interleaved in groups of 8, one per SIMD lane of lavapipe's
// 8-lane vectors, and the 16-byte texels a pair's kernel reads one after another (its block's
// quants, then its scales every second block).
constexpr int64_t kPairsPerGroup = 8;
size_t pair_texels(size_t blocks) {
    return 2 * blocks + (blocks + 1) / 2;
}

// Bytes of quants per 32-element block in the repacked layout.
size_t repacked_quant_bytes(DType t) {
    return t == DType::Q8_0 ? 32 : 16;
}

}  // namespace

bool matmul_supports(DType weight_type) {
    return shader_name(weight_type) != nullptr;
}

bool matmul_dot_type(DType weight_type) {
    return weight_type == DType::Q8_0 || weight_type == DType::Q4_0;
}

bool matmul_int_dot(const DeviceProps& device, DType weight_type) {
    return matmul_dot_type(weight_type) && device.int8_dot && device.subgroup_reductions() &&
           !device.cpu_kernels;
}

bool matmul_tiles(const DeviceProps& device, int64_t k) {
    return device.max_workgroup_invocations >= kTiledThreads &&
           device.max_shared_memory_bytes >= kTiledShared && k % 8 == 0;
}

bool matmul_repacks(const DeviceProps& device, DType weight_type) {
    return device.cpu_kernels && repacked_shader_name(weight_type) != nullptr;
}

int64_t repacked_unit_rows(DType t) {
    if (repacked_shader_name(t) == nullptr)
        fail("internal: no repacked matmul layout for ", dtype_name(t));
    return t == DType::Q4_0 ? 2 * kPairsPerGroup : 1;
}

size_t repacked_unit_bytes(DType t, int64_t k) {
    const size_t blocks = static_cast<size_t>(k / 32);
    if (t == DType::Q4_0) return kPairsPerGroup * 16 * pair_texels(blocks);
    return blocks * repacked_quant_bytes(t) + (4 * blocks + 15) / 16 * 16;
}

size_t repacked_bytes(DType t, int64_t rows, int64_t k) {
    const int64_t unit = repacked_unit_rows(t);
    return static_cast<size_t>((rows + unit - 1) / unit) * repacked_unit_bytes(t, k);
}

bool matmul_quantizes_input(DType weight_type, bool repacked) {
    return repacked && weight_type == DType::Q4_0;
}

bool matmul_gates_pairs(const DeviceProps& device, DType weight_type) {
    return weight_type == DType::Q4_0 && matmul_repacks(device, weight_type);
}

// The repacked kernels' workgroups: one 8-lane SIMD vector (record_matmul says why).
uint32_t repacked_workgroup(const DeviceProps& device) {
    return std::min(8u, device.max_workgroup_invocations);
}

bool matmul_folds_norm(const DeviceProps& device, DType weight_type) {
    // One subgroup a workgroup of 8 lanes (matmul_norm_partials counts on it).
    return matmul_gates_pairs(device, weight_type) && texel_reads(device) &&
           device.subgroup_reductions() && device.subgroup_size == 8 &&
           repacked_workgroup(device) == 8;
}

bool matmul_ropes_pairs(const DeviceProps& device, DType weight_type) {
    return matmul_gates_pairs(device, weight_type) && texel_reads(device);
}

int64_t matmul_norm_input_words(int64_t k) {
    return k + (k / 32 + 3) / 4 * 4;
}

void quantize_norm_input(const float* x, int64_t n, int64_t k, uint32_t* out) {
    const int64_t words = matmul_norm_input_words(k);
    for (int64_t t = 0; t < n; ++t) {
        const float* row = x + t * k;
        uint32_t* dst = out + t * words;
        std::fill(dst, dst + words, 0u);
        for (int64_t b = 0; b < k / 32; ++b) {
            // quant8.glsl's q8_scales for Q8_0, and the kernel's rounding (ties to even).
            float amax = 0.0f;
            for (int64_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(row[32 * b + i]));
            const float exact = amax / 127.0f;
            const float to_quant = exact != 0.0f ? 1.0f / exact : 0.0f;
            const float d = fp16_to_fp32(fp32_to_fp16(exact));
            for (int64_t i = 0; i < 32; ++i) {
                const auto q = static_cast<int32_t>(std::nearbyint(row[32 * b + i] * to_quant));
                std::memcpy(dst + 32 * b + i, &q, 4);
            }
            std::memcpy(dst + k + b, &d, 4);
        }
    }
}

std::vector<float> dequantize_norm_input(const uint32_t* words, int64_t n, int64_t k,
                                         std::span<const float> norm_scale) {
    const int64_t stride = matmul_norm_input_words(k);
    std::vector<float> v(static_cast<size_t>(n * k));
    for (int64_t t = 0; t < n; ++t) {
        const uint32_t* row = words + t * stride;
        for (int64_t i = 0; i < k; ++i) {
            float d = 0;
            std::memcpy(&d, row + k + i / 32, 4);
            v[static_cast<size_t>(t * k + i)] =
                static_cast<float>(static_cast<int32_t>(row[i])) * (d * norm_scale[t]);
        }
    }
    return v;
}

int64_t matmul_norm_partials(int64_t m) {
    return (m + 63) / 64;  // 8 rows an invocation, 8 invocations a workgroup
}

namespace {

// One GGUF row's fp16 block scales as f32 (exact: subnormal halves are normal floats).
float block_scale(const uint8_t* block) {
    uint16_t h;
    std::memcpy(&h, block, 2);
    return fp16_to_fp32(h);
}

void repack_rows(DType t, const uint8_t* src, int64_t rows, int64_t k, uint8_t* dst) {
    const size_t rb = repacked_unit_bytes(t, k);
    const size_t qb = repacked_quant_bytes(t);
    const size_t src_block = dtype_traits(t).type_size;  // an fp16 scale, then the quants
    const size_t blocks = static_cast<size_t>(k / 32);
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* in = src + static_cast<size_t>(r) * blocks * src_block;
        uint8_t* out = dst + static_cast<size_t>(r) * rb;
        std::memset(out, 0, rb);
        for (size_t b = 0; b < blocks; ++b) {
            const float d = block_scale(in + b * src_block);
            std::memcpy(out + b * qb, in + b * src_block + 2, qb);
            std::memcpy(out + blocks * qb + 4 * b, &d, 4);
        }
    }
}

void repack_q4_0_pairs(const uint8_t* src, int64_t rows, int64_t k, uint8_t* dst) {
    constexpr size_t kBlock = 18;  // fp16 d, then 16 bytes: element i low nibble, i + 16 high
    const size_t blocks = static_cast<size_t>(k / 32);
    const size_t texels = pair_texels(blocks);
    std::memset(dst, 0, repacked_bytes(DType::Q4_0, rows, k));
    auto nibble = [](const uint8_t* block, size_t col) -> uint32_t {
        const uint8_t byte = block[2 + col % 16];
        return col < 16 ? byte & 15u : byte >> 4;
    };
    for (int64_t p = 0; p < (rows + 1) / 2; ++p) {
        // Texel t of pair p: after the groups before it, the t-th of its group's 8-texel rows.
        const size_t group = static_cast<size_t>(p / kPairsPerGroup);
        const size_t lane = static_cast<size_t>(p % kPairsPerGroup);
        auto texel = [&](size_t t) {
            return dst + 16 * ((group * texels + t) * kPairsPerGroup + lane);
        };
        const uint8_t* row[2] = {
            src + static_cast<size_t>(2 * p) * blocks * kBlock,
            2 * p + 1 < rows ? src + static_cast<size_t>(2 * p + 1) * blocks * kBlock : nullptr};
        for (size_t b = 0; b < blocks; ++b) {
            for (size_t word = 0; word < 8; ++word) {  // columns 4 word .. 4 word + 3
                uint32_t v = 0;
                for (int half = 0; half < 2; ++half) {
                    if (row[half] == nullptr) continue;
                    const uint8_t* block = row[half] + b * kBlock;
                    for (size_t j = 0; j < 4; ++j)
                        v |= nibble(block, 4 * word + j) << (16 * half + 4 * j);
                }
                std::memcpy(texel(2 * b + word / 4) + 4 * (word % 4), &v, 4);
            }
            for (int half = 0; half < 2; ++half) {
                const float d = row[half] != nullptr ? block_scale(row[half] + b * kBlock) : 0.0f;
                std::memcpy(texel(2 * blocks + b / 2) + 8 * (b % 2) + 4 * half, &d, 4);
            }
        }
    }
}

}  // namespace

void repack_for_matmul(DType t, const uint8_t* src, int64_t rows, int64_t k, uint8_t* dst) {
    if (t == DType::Q4_0)
        repack_q4_0_pairs(src, rows, k, dst);
    else
        repack_rows(t, src, rows, k, dst);
}

std::vector<uint8_t> interleave_gate_up(DType weight_type, const uint8_t* gate, const uint8_t* up,
                                        int64_t rows, int64_t k) {
    const size_t row = row_bytes(weight_type, k);
    std::vector<uint8_t> out(2 * row * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        const size_t at = static_cast<size_t>(r) * row;
        std::memcpy(out.data() + 2 * at, gate + at, row);
        std::memcpy(out.data() + 2 * at + row, up + at, row);
    }
    return out;
}

Allocation upload_repacked(Context& ctx, DType weight_type, const uint8_t* src, int64_t rows,
                           int64_t k) {
    const RepackRows part{src, rows};
    return upload_repacked(ctx, weight_type, std::span(&part, 1), k);
}

Allocation upload_repacked(Context& ctx, DType weight_type, std::span<const RepackRows> parts,
                           int64_t k) {
    // The parts' GGUF rows back to back first: Q4_0's pairs run across the parts' boundaries,
    // so the group's rows keep their numbers.
    const size_t gguf_row = row_bytes(weight_type, k);
    int64_t rows = 0;
    for (const RepackRows& p : parts) rows += p.rows;
    std::vector<uint8_t> gguf;
    const uint8_t* src = parts.size() == 1 ? parts[0].src : nullptr;
    if (src == nullptr) {
        gguf.reserve(gguf_row * static_cast<size_t>(rows));
        for (const RepackRows& p : parts)
            gguf.insert(gguf.end(), p.src, p.src + gguf_row * static_cast<size_t>(p.rows));
        src = gguf.data();
    }
    std::vector<uint8_t> packed(repacked_bytes(weight_type, rows, k));
    repack_for_matmul(weight_type, src, rows, k, packed.data());
    Allocation a = ctx.memory().allocate(packed.size(), MemoryUse::Device, 16);
    ctx.write(a, 0, packed.data(), packed.size());
    return a;
}

MatMulConfig matmul_config(const DeviceProps& device, DType, int64_t n, MatMulConfig o) {
    MatMulConfig c;
    // A few subgroups per workgroup (at least 32 threads), within the device's limit.
    c.workgroup = o.workgroup != 0 ? o.workgroup
                                   : std::min(std::max<uint32_t>(32, device.subgroup_size),
                                              device.max_workgroup_invocations);
    // The row-per-invocation layout needs no subgroup reductions: also the one for drivers
    // whose subgroup arithmetic is turned off (vk_workarounds.h).
    c.row_per_invocation = o.row_per_invocation >= 0
                               ? o.row_per_invocation
                               : (device.cpu_kernels || !device.subgroup_reductions());
    if (c.row_per_invocation != 0) {
        // lavapipe runs 8 rows per SIMD instruction; a workgroup of 64 rows is a few of them.
        c.workgroup =
            o.workgroup != 0 ? o.workgroup : std::min(64u, device.max_workgroup_invocations);
        // Each invocation computes this many rows, reusing every input vector it loads.
        c.rows = o.rows != 0 ? o.rows : 4;
    } else {
        c.rows = o.rows != 0 ? o.rows : 2;
    }
    // Each weight chunk is dequantized once for this many tokens (a real tiled GEMM for long
    // prefills is a later step).
    c.tokens =
        o.tokens != 0 ? o.tokens : (n >= 4 ? 4 : static_cast<uint32_t>(std::max<int64_t>(n, 1)));
    c.max_binding = binding::limit(device, o.max_binding);
    return c;
}

void record_matmul(Context& ctx, Sequence& seq, const MatMulArgs& a, MatMulConfig overrides) {
    constexpr const char* kOp = "matmul";
    const char* shader =
        a.repacked ? repacked_shader_name(a.weight_type) : shader_name(a.weight_type);
    if (shader == nullptr)
        fail("the Vulkan backend has no matmul for ", dtype_name(a.weight_type), " weights");
    if (a.m <= 0 || a.k <= 0 || a.n <= 0)
        fail("internal: Vulkan matmul of shape m=", a.m, " k=", a.k, " n=", a.n);
    const int64_t block = dtype_traits(a.weight_type).block_size;
    if (a.k % block != 0)
        fail("Vulkan matmul: k = ", a.k, " is not a multiple of the ", dtype_name(a.weight_type),
             " block (", block, ")");
    if (a.w_offset < 0 || a.w_offset % 2 != 0 || a.w.offset % 2 != 0)
        fail("internal: Vulkan matmul weight offset not 2-byte aligned");
    if (a.repacked && (a.w_offset % 16 != 0 || a.w.offset % 16 != 0))
        fail("internal: Vulkan matmul repacked weights not 16-byte aligned");
    if (a.x_packed && (a.repacked || !matmul_dot_type(a.weight_type) || !ctx.props().int8_dot))
        fail("internal: Vulkan integer dot-product matmul for ", dtype_name(a.weight_type),
             a.repacked ? " (repacked)" : "", ctx.props().int8_dot ? "" : " without int8 dot");
    const size_t groups = a.more_outputs.size();
    if (groups > 2) fail("internal: Vulkan matmul with ", groups + 1, " outputs (at most 3)");
    if (a.gated && (!a.repacked || a.weight_type != DType::Q4_0 || groups > 0 || a.m % 2 != 0 ||
                    a.bias.buffer != VK_NULL_HANDLE))
        fail(
            "internal: gated Vulkan matmul needs repacked Q4_0 (gate, up) row pairs, no bias "
            "and one output");
    const bool residual = a.residual.buffer != VK_NULL_HANDLE;
    const bool norm_out = a.norm_out.weight.buffer != VK_NULL_HANDLE;
    const bool norm_in = a.norm_in.partials.buffer != VK_NULL_HANDLE;
    const bool norm = norm_out || norm_in;
    if (norm_out && (!residual || norm_in))
        fail("internal: a Vulkan matmul preparing a norm adds a residual and takes no norm");
    if ((residual || norm) && !matmul_folds_norm(ctx.props(), a.weight_type))
        fail("internal: Vulkan matmul of ", dtype_name(a.weight_type),
             " weights cannot fold a residual add or a norm on this device");
    if ((residual || norm) && !a.repacked)
        fail("internal: a residual add or a norm folded into a matmul needs repacked weights");
    if (residual && (a.gated || groups > 0 || a.bias.buffer != VK_NULL_HANDLE))
        fail("internal: Vulkan matmul with a residual has a bias, a gate or several outputs");
    const bool rope = a.rope.positions.buffer != VK_NULL_HANDLE;
    if (rope) {
        if (!matmul_ropes_pairs(ctx.props(), a.weight_type) || !a.repacked)
            fail("internal: Vulkan matmul of ", dtype_name(a.weight_type),
                 " weights cannot fold a rope on this device");
        const int64_t row1 = groups == 2 ? a.more_outputs[0].first_row : 0;
        const int64_t row2 = groups == 2 ? a.more_outputs[1].first_row : 0;
        if (groups != 2 || a.gated || residual || norm_out || a.rope.head_dim <= 0 ||
            a.rope.head_dim % 2 != 0 || row1 % 2 != 0 || row2 % 2 != 0 ||
            row2 - row1 != a.m - row2 || a.rope.n_ctx <= 0)
            fail(
                "internal: a rope folded into a Vulkan matmul needs the queries', keys' and "
                "values' outputs, even rows and heads, as many keys as values and a cache");
        need_bytes(a.rope.positions, 4 * (a.rope.positions_offset + a.n), kOp, "positions");
        need_bytes(a.rope.k_cache, 2 * a.rope.n_ctx * (a.m - row2), kOp, "k cache");
        need_bytes(a.rope.v_cache, 2 * a.rope.n_ctx * (a.m - row2), kOp, "v cache");
    }
    // Values in y for `rows` weight rows: one per row, or per (gate, up) pair.
    auto out_rows = [&](int64_t rows) { return a.gated ? rows / 2 : rows; };
    const int64_t out_m = out_rows(a.m);
    for (size_t i = 0; i < groups; ++i) {
        const MatMulArgs::Output& o = a.more_outputs[i];
        const int64_t end = i + 1 < groups ? a.more_outputs[i + 1].first_row : a.m;
        if (o.first_row <= (i == 0 ? 0 : a.more_outputs[i - 1].first_row) || o.first_row >= end ||
            o.y_offset < 0 || o.y_stride < end - o.first_row)
            fail("internal: Vulkan matmul output ", i + 1, " of rows ", o.first_row, "..", end,
                 " is malformed");
        need_bytes(a.y, 4 * (o.y_offset + (a.n - 1) * o.y_stride + end - o.first_row), kOp,
                   "output");
    }
    // One token's input: k floats, or its packed Q8_0 blocks in words.
    // A norm's folded input comes quantized (matmul_norm_input_words).
    const int64_t x_row = a.x_packed ? q8_0_packed_words(a.k)
                          : norm_in  ? matmul_norm_input_words(a.k)
                                     : a.k;
    const int64_t x_stride = a.x_stride < 0 ? x_row : a.x_stride;
    const int64_t y_stride = a.y_stride < 0 ? out_m : a.y_stride;
    const bool has_bias = a.bias.buffer != VK_NULL_HANDLE;

    // The shader reads whole 32-bit words: the weights' range covers the last one.
    // Weight rows come in units (Q4_0's repacked pairs) of rb bytes each.
    const int64_t unit = a.repacked ? repacked_unit_rows(a.weight_type) : 1;
    const int64_t rb = static_cast<int64_t>(a.repacked ? repacked_unit_bytes(a.weight_type, a.k)
                                                       : row_bytes(a.weight_type, a.k));
    auto weight_bytes = [&](int64_t rows) { return (rows + unit - 1) / unit * rb; };
    const int64_t w_start = static_cast<int64_t>(a.w.offset) + a.w_offset;
    if (a.w.buffer == VK_NULL_HANDLE ||
        static_cast<int64_t>(a.w.offset + a.w.size) < (w_start + weight_bytes(a.m) + 3) / 4 * 4)
        fail("internal: Vulkan matmul weight binding holds ", a.w.size, " bytes, needs ",
             a.w_offset + weight_bytes(a.m), " and the rest of the last word");
    need_bytes(a.x, 4 * (a.x_offset + (a.n - 1) * x_stride + x_row), kOp, "input");
    // y, and the tensors laid out as y, from `offset` floats.
    auto need_like_y = [&](const BufferRange& r, int64_t offset, const char* what) {
        need_bytes(r, 4 * (offset + (a.n - 1) * y_stride + out_m), kOp, what);
    };
    need_like_y(a.y, a.y_offset, "output");
    if (has_bias) need_bytes(a.bias, 4 * (a.bias_offset + a.m), kOp, "bias");
    if (residual) need_like_y(a.residual, a.residual_offset, "residual");
    const int64_t partials = matmul_norm_partials(a.m);
    if (norm_out) {
        need_bytes(a.norm_out.weight, 4 * a.m, kOp, "norm weight");
        need_bytes(a.norm_out.weighted,
                   4 * (a.norm_out.weighted_offset + a.n * matmul_norm_input_words(a.m)), kOp,
                   "weighted sum");
        need_bytes(a.norm_out.partials, 4 * (a.norm_out.partials_offset + a.n * partials), kOp,
                   "partial sums");
    }
    if (norm_in)
        need_bytes(a.norm_in.partials, 4 * (a.norm_in.partials_offset + a.n * a.norm_in.count), kOp,
                   "partial sums");

    const DeviceProps& props = ctx.props();
    // The repacked variants implement only the row-per-invocation layout with at most 4
    // tokens, spelled out in the shader: Q8_0 4 rows per invocation (8 hold twice the weight
    // texels and ran slower), Q4_0 8 rows, four pairs, so that the quantizing of each input
    // block serves 8 rows.
    // Workgroups of one 8-lane SIMD vector: lavapipe hands whole workgroups to its threads, and
    // with 64 lanes a Q4_0 workgroup took 512 rows, so a 576-row matrix ran as 512 rows on one
    // core and 64 on the other (8 lanes: decode 1.2 times faster, for both types).
    if (a.repacked) {
        overrides.row_per_invocation = 1;
        overrides.rows = a.weight_type == DType::Q4_0 ? 8 : 4;
        if (overrides.workgroup == 0) overrides.workgroup = repacked_workgroup(props);
        if (norm && overrides.workgroup != repacked_workgroup(props))
            fail("internal: a norm folded into a Vulkan matmul with another workgroup size");
        overrides.tokens = std::min<uint32_t>(
            overrides.tokens != 0 ? overrides.tokens : 4,
            static_cast<uint32_t>(std::min<int64_t>(std::max<int64_t>(a.n, 1), 4)));
    }
    if (a.x_packed) overrides.row_per_invocation = 0;  // matmul_dot.comp: the GPU layout
    const MatMulConfig c = matmul_config(props, a.weight_type, a.n, overrides);
    // Long prefills on GPUs: the shared-memory GEMM (not on CPU devices, where lavapipe pays for
    // every barrier and shared-memory access).
    const bool tiled = !a.repacked && !a.x_packed && matmul_tiles(props, a.k) &&
                       (overrides.tiled == 1 ||
                        (overrides.tiled < 0 && !props.cpu_kernels && a.n >= kTiledMinTokens));
    // The row-per-invocation kernels read the weights through a texel buffer where the device
    // has them (CPU devices: see shaders/weights.glsl), and the input through one too: llvmpipe
    // fetches a texel for all lanes with straight-line code, 16 bytes per lane.
    const bool texel = !tiled && !a.x_packed && c.row_per_invocation != 0 &&
                       overrides.texel_weights != 0 && texel_reads(props);
    // Otherwise the input comes from a uniform buffer when a token's row fits one, as many
    // tokens per dispatch as fit: llvmpipe gathers a uniform-buffer load lane by lane, one
    // component at a time (a texel fetch of 4 floats costs about what one component does here),
    // but a storage-buffer load is a loop over the lanes with a branch per element.
    const uint64_t ux_align = std::max<uint64_t>(props.min_uniform_buffer_offset_alignment, 16);
    const uint64_t ux_limit = std::min<uint64_t>(kUniformInputBytes, c.max_binding);
    const bool x_uniform =
        !tiled && c.row_per_invocation != 0 &&
        (overrides.uniform_input > 0 || (overrides.uniform_input < 0 && !texel)) &&
        props.max_uniform_buffer_range >= kUniformInputBytes &&
        4 * static_cast<uint64_t>(x_row) + ux_align <= ux_limit;
    // Whether every token's input starts at a multiple of 16 bytes, and so at a multiple of 4
    // floats into its binding, whatever the binding's alignment (the row-per-invocation
    // kernels' vec4 loads).
    const bool x_aligned = c.row_per_invocation != 0 && !a.x_packed &&
                           (a.x.offset + 4 * static_cast<uint64_t>(a.x_offset)) % 16 == 0 &&
                           x_stride % 4 == 0;
    const bool x_texel = texel && !x_uniform;
    if ((norm || rope) && !(texel && x_texel))
        fail("internal: a norm or rope folded into a Vulkan matmul needs texel-buffer inputs");
    if (norm_in && !x_aligned)
        fail("internal: a Vulkan matmul's quantized norm input not at whole texels");
    PipelineDesc desc{std::string(shader) + (texel ? "_tx" : "") + (x_uniform ? "_ux" : "") +
                          (x_texel ? "_xt" : "") + (norm_out ? "_normout" : "") +
                          (norm_in ? "_normin" : "") + (rope ? "_rope" : ""),
                      rope       ? 8u
                      : norm_out ? 7u
                      : norm_in  ? 5u
                                 : 4u,
                      sizeof(MatMulPush),
                      {c.workgroup, c.rows, c.tokens, static_cast<uint32_t>(c.row_per_invocation),
                       x_aligned ? 1u : 0u, a.gated ? 1u : 0u, residual ? 1u : 0u}};
    if (tiled) desc = {std::string(shader) + "_tiled", 4, sizeof(MatMulPush), {kTiledThreads}};
    if (a.x_packed)
        desc = {
            std::string(shader) + "_dot", 4, sizeof(MatMulPush), {c.workgroup, c.rows, c.tokens}};
    if (x_uniform) desc.uniform_buffers = 1u << 1;
    if (texel) desc.texel_buffers = 1u << 0;
    if (x_texel) desc.texel_buffers |= 1u << 1;
    uint64_t nw_skip = 0;
    const BufferRange norm_w = norm_out ? binding::part(props, a.norm_out.weight, 0,
                                                        4 * static_cast<uint64_t>(a.m), nw_skip)
                                        : BufferRange{};
    if (nw_skip != 0) fail("internal: Vulkan matmul norm weights not at a binding offset");
    const Pipeline& pipeline = ctx.pipelines().get(desc);
    // Rows and tokens one workgroup computes.
    const int64_t rows_per_group = tiled                       ? kTileRows
                                   : c.row_per_invocation != 0 ? int64_t{c.rows} * c.workgroup
                                                               : int64_t{c.rows};
    const int64_t tokens_per_group = tiled ? kTileTokens : int64_t{c.tokens};

    // Rows per dispatch so the weights' part fits one binding; then tokens so the input's and
    // the output's parts do, and the token groups fit the dispatch's y limit.
    // Texel-buffer bindings also stay within the device's texel count.
    const uint64_t texel_limit =
        std::min<uint64_t>(c.max_binding, kTexelBytes * props.max_texel_buffer_elements);
    const int64_t rows_per =
        std::min(a.m, unit * binding::items_per_binding(props, texel ? texel_limit : c.max_binding,
                                                        rb, rb, "weight row"));
    const int64_t tokens_per = std::min(
        {a.n,
         binding::items_per_binding(props, x_texel ? texel_limit : c.max_binding, 4 * x_row,
                                    4 * x_stride, "input row"),
         binding::items_per_binding(props, c.max_binding, 4 * out_rows(rows_per), 4 * y_stride,
                                    "output row"),
         static_cast<int64_t>(props.max_workgroup_count[1]) * tokens_per_group,
         x_uniform ? 1 + static_cast<int64_t>((ux_limit - ux_align - 4 * x_row) / (4 * x_stride))
                   : a.n});

    if (norm_out && rows_per < a.m)
        fail("internal: a Vulkan matmul preparing a norm needs its rows in one dispatch");
    if (groups > 0 && (rows_per < a.m || a.y.size > c.max_binding))
        fail(
            "internal: Vulkan matmul with several outputs needs one dispatch of rows and y "
            "bound whole");
    const uint32_t max_x = overrides.max_groups_x != 0
                               ? std::min(overrides.max_groups_x, props.max_workgroup_count[0])
                               : props.max_workgroup_count[0];
    for (int64_t r0 = 0; r0 < a.m; r0 += rows_per) {
        const int64_t mr = std::min(rows_per, a.m - r0);
        uint64_t w_skip = 0;
        const BufferRange w =
            texel ? binding::texel_part(props, a.w,
                                        static_cast<uint64_t>(a.w_offset + weight_bytes(r0)),
                                        weight_bytes(mr), w_skip)
                  : binding::part(props, a.w, static_cast<uint64_t>(a.w_offset + weight_bytes(r0)),
                                  weight_bytes(mr), w_skip);
        uint64_t b_skip = 0;
        const BufferRange bias =
            has_bias ? binding::part(props, a.bias, 4 * (a.bias_offset + r0), 4 * mr, b_skip)
                     : BufferRange{};
        for (int64_t t0 = 0; t0 < a.n; t0 += tokens_per) {
            const int64_t nt = std::min(tokens_per, a.n - t0);
            uint64_t x_skip = 0, y_skip = 0;
            const uint64_t x_begin = 4 * static_cast<uint64_t>(a.x_offset + t0 * x_stride);
            const uint64_t x_part_bytes = 4 * static_cast<uint64_t>((nt - 1) * x_stride + x_row);
            BufferRange x = x_texel ? binding::texel_part(props, a.x, x_begin, x_part_bytes, x_skip)
                                    : binding::part(props, a.x, x_begin, x_part_bytes, x_skip);
            if (x_uniform) {  // the same part, at the uniform-buffer offset alignment
                const uint64_t start = a.x.offset + x_begin;
                x = {a.x.buffer, start / ux_align * ux_align, 0};
                x_skip = start - x.offset;
                x.size = std::min((x_skip + x_part_bytes + 15) / 16 * 16,
                                  a.x.offset + a.x.size - x.offset);
            }
            // This dispatch's part of a tensor laid out as y (y itself, the residual, the weighted
            // sum), from `offset` floats into `whole`.
            auto part_like_y = [&](const BufferRange& whole, int64_t offset, uint64_t& skip) {
                return binding::part(props, whole, 4 * (offset + t0 * y_stride + out_rows(r0)),
                                     4 * ((nt - 1) * y_stride + out_rows(mr)), skip);
            };
            // With several outputs, y binds whole (it fits one binding, checked above).
            const BufferRange y = groups > 0 ? binding::part(props, a.y, 0, a.y.size, y_skip)
                                             : part_like_y(a.y, a.y_offset, y_skip);
            const int64_t y_base = groups > 0 ? static_cast<int64_t>(y_skip / 4) : 0;
            // The residual's part and the weighted sum's; the partial sums' tokens.
            uint64_t r_skip = 0, ws_skip = 0, p_skip = 0;
            const BufferRange res =
                residual ? part_like_y(a.residual, a.residual_offset, r_skip) : BufferRange{};
            const int64_t weighted_stride = matmul_norm_input_words(a.m);
            const BufferRange weighted =
                norm_out ? binding::part(props, a.norm_out.weighted,
                                         4 * (a.norm_out.weighted_offset + t0 * weighted_stride),
                                         4 * nt * weighted_stride, ws_skip)
                         : BufferRange{};
            const int64_t partial_count = norm_out ? partials : a.norm_in.count;
            const BufferRange partial_range =
                norm
                    ? binding::part(
                          props, norm_out ? a.norm_out.partials : a.norm_in.partials,
                          4 * ((norm_out ? a.norm_out.partials_offset : a.norm_in.partials_offset) +
                               t0 * partial_count),
                          4 * nt * partial_count, p_skip)
                    : BufferRange{};
            // The rope's positions of this dispatch's tokens.
            uint64_t pos_skip = 0;
            const BufferRange positions =
                rope ? binding::part(props, a.rope.positions, 4 * (a.rope.positions_offset + t0),
                                     4 * nt, pos_skip)
                     : BufferRange{};
            auto output = [&](size_t i) -> std::array<uint32_t, 3> {
                if (i >= groups) return {~0u, 0, 0};
                const MatMulArgs::Output& o = a.more_outputs[i];
                return {push_u32(o.first_row, kOp, "first row"),
                        push_u32(y_base + o.y_offset + t0 * o.y_stride, kOp, "y_offset"),
                        push_u32(o.y_stride, kOp, "y_stride")};
            };
            const std::array<uint32_t, 3> out1 = output(0), out2 = output(1);
            const MatMulPush push{push_u32(mr, kOp, "m"),
                                  push_u32(a.k, kOp, "k"),
                                  push_u32(nt, kOp, "n"),
                                  push_u32(static_cast<int64_t>(w_skip), kOp, "w_offset"),
                                  push_u32(static_cast<int64_t>(x_skip / 4), kOp, "x_offset"),
                                  push_u32(x_stride, kOp, "x_stride"),
                                  push_u32(groups > 0 ? y_base + a.y_offset + t0 * y_stride
                                                      : static_cast<int64_t>(y_skip / 4),
                                           kOp, "y_offset"),
                                  push_u32(y_stride, kOp, "y_stride"),
                                  push_u32(static_cast<int64_t>((residual ? r_skip : b_skip) / 4),
                                           kOp, "bias_offset"),
                                  has_bias ? 1u : 0u,
                                  out1[0],
                                  out1[1],
                                  out1[2],
                                  out2[0],
                                  out2[1],
                                  out2[2],
                                  a.norm_in.eps,
                                  push_u32(static_cast<int64_t>(p_skip / 4), kOp, "partials"),
                                  push_u32(partial_count, kOp, "partials"),
                                  push_u32(partial_count, kOp, "partials"),
                                  push_u32(static_cast<int64_t>(ws_skip / 4), kOp, "weighted"),
                                  push_u32(weighted_stride, kOp, "weighted stride"),
                                  push_u32(a.rope.head_dim, kOp, "head_dim"),
                                  push_u32(static_cast<int64_t>(pos_skip / 4), kOp, "positions"),
                                  push_u32(a.rope.n_ctx, kOp, "n_ctx"),
                                  a.rope.freq_scale,
                                  rope ? rope_theta_scale(a.rope.base, a.rope.head_dim) : 0.0f};
            // Row groups fill x up to the device's limit and continue in z.
            const int64_t row_groups = (mr + rows_per_group - 1) / rows_per_group;
            Groups g;
            g.x = static_cast<uint32_t>(std::min<int64_t>(row_groups, max_x));
            g.z = static_cast<uint32_t>((row_groups + g.x - 1) / g.x);
            g.y = push_u32((nt + tokens_per_group - 1) / tokens_per_group, kOp, "token groups");
            // Without a bias or residual, binding 3 repeats the output (valid, never read).
            const BufferRange third = has_bias ? bias : residual ? res : y;
            if (rope)  // binding 4: the partial sums with a folded norm, else unread
                seq.dispatch(pipeline,
                             {w, x, y, third, norm_in ? partial_range : y, positions,
                              a.rope.k_cache, a.rope.v_cache},
                             push, g);
            else if (norm_out)
                seq.dispatch(pipeline, {w, x, y, third, norm_w, weighted, partial_range}, push, g);
            else if (norm_in)
                seq.dispatch(pipeline, {w, x, y, third, partial_range}, push, g);
            else
                seq.dispatch(pipeline, {w, x, y, third}, push, g);
        }
    }
}

}  // namespace mllm::vk

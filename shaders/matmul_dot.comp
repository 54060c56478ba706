#version 450
// Q8_0 and Q4_0 weights times activations quantized to Q8_0 blocks, with integer dot products
// (VK_KHR_shader_integer_dot_product): y[t, r] = sum over blocks of d_w * d_x * (the block's
// int8 dot product) (+ bias[r]), as the CPU backend and ggml compute it. The activations come
// packed by round_activations (FORMAT 2: per row k / 4 words of four int8, then k / 32 f32
// scales; x_offset and x_stride count words). Integer sums within a block are exact, so the
// result differs from the CPU's only in how the blocks' terms are added up.
//
// The layout is matmul.comp's GPU one: a workgroup computes ROWS rows for TOKENS tokens, its
// threads stride over quarter blocks (8 elements) and reduce per subgroup, then across
// subgroups in shared memory. One variant per weight type (WEIGHT_Q8_0 or WEIGHT_Q4_0).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_spirv_intrinsics : require
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 1;
layout(constant_id = 2) const uint TOKENS = 1;

// Binding 0, the weights: declared by weights.glsl.
layout(std430, set = 0, binding = 1) readonly buffer Input { uint xq[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Output { float y[]; };
layout(std430, set = 0, binding = 3) readonly buffer Bias { float bias[]; };

#include "matmul_params.glsl"

#include "weights.glsl"

// OpSDotKHR (4450) on two words of four signed 8-bit integers (PackedVectorFormat4x8Bit, 0);
// capabilities DotProduct (6019) and DotProductInput4x8BitPacked (6018). glslang 12 has no
// GL_EXT_integer_dot_product, so the instruction is declared directly.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450) int sdot4x8(uint a, uint b, spirv_literal int packed_format);
int dot4(uint a, uint b) {
    return sdot4x8(a, b, 0);
}

#if defined(WEIGHT_Q8_0)
const uint BLOCK_BYTES = 34u;
#elif defined(WEIGHT_Q4_0)
const uint BLOCK_BYTES = 18u;
#else
#error "matmul_dot: Q8_0 or Q4_0 weights"
#endif

shared float partial[gl_WorkGroupSize.x];

// Quarter s of block b of a weight row against token row xr of packed activations: the integer
// dot product of its 8 elements with the activations' quants.
int quarter_dot(uint block_at, uint s, uint xr, uint b) {
#if defined(WEIGHT_Q8_0)
    // int8 quants 8s..8s+7 after the fp16 scale.
    const uint w0 = load_u32(block_at + 2u + 8u * s);
    const uint w1 = load_u32(block_at + 6u + 8u * s);
    return dot4(w0, xq[xr + 8u * b + 2u * s]) + dot4(w1, xq[xr + 8u * b + 2u * s + 1u]);
#else
    // Quant bytes 4s..4s+3: low nibbles are elements 4s.., high ones 4s + 16..; each is q - 8,
    // so the dot product is the nibbles' minus 8 times the activations' sum.
    const uint q = load_u32(block_at + 2u + 4u * s);
    const uint x0 = xq[xr + 8u * b + s], x1 = xq[xr + 8u * b + 4u + s];
    const int nibbles = dot4(q & 0x0f0f0f0fu, x0) + dot4((q >> 4) & 0x0f0f0f0fu, x1);
    return nibbles - 8 * (dot4(0x01010101u, x0) + dot4(0x01010101u, x1));
#endif
}

void main() {
    const uint group = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    const uint row0 = group * ROWS;
    if (row0 >= p.m) return;  // the whole workgroup
    const uint tok0 = gl_WorkGroupID.y * TOKENS;
    const uint tid = gl_LocalInvocationID.x;
    const uint blocks = p.k / 32u;
    const uint row_bytes = blocks * BLOCK_BYTES;

    float acc[ROWS * TOKENS];
    for (uint i = 0; i < ROWS * TOKENS; ++i) acc[i] = 0.0;
    for (uint r = 0; r < ROWS; ++r) {
        const uint row = row0 + r;
        if (row >= p.m) break;
        for (uint c = tid; c < 4u * blocks; c += gl_WorkGroupSize.x) {
            const uint b = c / 4u, s = c % 4u;
            const uint block_at = p.w_offset + row * row_bytes + b * BLOCK_BYTES;
            const float dw = load_half(block_at);
            for (uint t = 0; t < TOKENS; ++t) {
                if (tok0 + t >= p.n) break;
                const uint xr = p.x_offset + (tok0 + t) * p.x_stride;
                const float dx = uintBitsToFloat(xq[xr + p.k / 4u + b]);
                acc[r * TOKENS + t] += float(quarter_dot(block_at, s, xr, b)) * (dw * dx);
            }
        }
    }

    for (uint r = 0; r < ROWS; ++r) {
        const uint row = row0 + r;
        const float bv = (p.has_bias != 0u && row < p.m) ? bias[p.bias_offset + row] : 0.0;
        for (uint t = 0; t < TOKENS; ++t) {
            const uint tok = tok0 + t;
            float sum = subgroupAdd(acc[r * TOKENS + t]);
            if (gl_NumSubgroups > 1u) {
                if (subgroupElect()) partial[gl_SubgroupID] = sum;
                barrier();
                sum = 0.0;
                for (uint i = 0; i < gl_NumSubgroups; ++i) sum += partial[i];
                barrier();  // partial is reused for the next output
            }
            if (tid == 0u && row < p.m && tok < p.n)
                y[y_at(row, tok)] = sum + bv;
        }
    }
}

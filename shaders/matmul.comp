#version 450
// Matrix times weights, for one weight type per compiled variant (-DWEIGHT_F32, -DWEIGHT_Q8_0,
// -DWEIGHT_Q4_0): y[t, r] = sum_i W[r, i] * x[t, i], with W [m, k] in its GGUF layout and x, y
// f32 rows. GEMV when n = 1; a small GEMM for a few tokens.
//
// A workgroup computes ROWS weight rows for TOKENS tokens. Its threads stride over each row in
// chunks of 8 elements (a quarter of a quant block), dequantize a chunk in registers once and
// use it for every token; partial sums reduce per subgroup (subgroupAdd), then across the
// workgroup's subgroups in shared memory. Nothing assumes a subgroup size: the workgroup size,
// ROWS and TOKENS are specialization constants chosen by the host.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 1;
layout(constant_id = 2) const uint TOKENS = 1;

layout(std430, set = 0, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, set = 0, binding = 1) readonly buffer Input { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Output { float y[]; };

layout(push_constant) uniform Params {
    uint m;         // weight rows (output features)
    uint k;         // elements per row (input features)
    uint n;         // tokens
    uint w_offset;  // bytes into the weight binding (a multiple of 4)
    uint x_offset;  // floats into the input binding
    uint x_stride;  // floats between tokens
    uint y_offset;
    uint y_stride;
} p;

#include "weights.glsl"

shared float partial[gl_WorkGroupSize.x];

#if defined(WEIGHT_Q8_0)
const uint BLOCK_BYTES = 34;
#elif defined(WEIGHT_Q4_0)
const uint BLOCK_BYTES = 18;
#endif

void main() {
    // Row groups beyond the dispatch's x limit continue in z.
    const uint group = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    const uint row0 = group * ROWS;
    if (row0 >= p.m) return;  // the whole workgroup
    const uint tok0 = gl_WorkGroupID.y * TOKENS;
    const uint tid = gl_LocalInvocationID.x;

    float acc[ROWS * TOKENS];
    for (uint i = 0; i < ROWS * TOKENS; ++i) acc[i] = 0.0;

    for (uint r = 0; r < ROWS; ++r) {
        const uint row = row0 + r;
        if (row >= p.m) break;
#if defined(WEIGHT_F32)
        const uint wbase = p.w_offset / 4u + row * p.k;
        for (uint i = tid; i < p.k; i += gl_WorkGroupSize.x) {
            const float wv = uintBitsToFloat(w[wbase + i]);
            for (uint t = 0; t < TOKENS; ++t) {
                if (tok0 + t >= p.n) break;
                acc[r * TOKENS + t] += wv * x[p.x_offset + (tok0 + t) * p.x_stride + i];
            }
        }
#else
        const uint row_base = p.w_offset + row * (p.k / 32u) * BLOCK_BYTES;
        const uint chunks = p.k / 8u;
        for (uint c = tid; c < chunks; c += gl_WorkGroupSize.x) {
            const uint b = c >> 2;   // block
            const uint s = c & 3u;   // quarter of the block
            const uint blk = row_base + b * BLOCK_BYTES;
            const float d = load_half(blk);
#if defined(WEIGHT_Q8_0)
            // Elements 8s .. 8s+7: int8 values.
            const vec4 w0 = unpack_i8x4(load_u32(blk + 2u + 8u * s));
            const vec4 w1 = unpack_i8x4(load_u32(blk + 6u + 8u * s));
            const uint i0 = b * 32u + 8u * s;
            const uint i1 = i0 + 4u;
#else
            // Bytes 4s .. 4s+3: elements 4s.. in the low nibbles, 4s+16.. in the high ones.
            const uvec4 q = uvec4(load_u32(blk + 2u + 4u * s)) >> uvec4(0, 8, 16, 24);
            const vec4 w0 = vec4(q & 15u) - 8.0;
            const vec4 w1 = vec4((q >> 4) & 15u) - 8.0;
            const uint i0 = b * 32u + 4u * s;
            const uint i1 = i0 + 16u;
#endif
            for (uint t = 0; t < TOKENS; ++t) {
                if (tok0 + t >= p.n) break;
                const uint xb = p.x_offset + (tok0 + t) * p.x_stride;
                const vec4 x0 = vec4(x[xb + i0], x[xb + i0 + 1u], x[xb + i0 + 2u], x[xb + i0 + 3u]);
                const vec4 x1 = vec4(x[xb + i1], x[xb + i1 + 1u], x[xb + i1 + 2u], x[xb + i1 + 3u]);
                acc[r * TOKENS + t] += d * (dot(w0, x0) + dot(w1, x1));
            }
        }
#endif
    }

    for (uint r = 0; r < ROWS; ++r) {
        for (uint t = 0; t < TOKENS; ++t) {
            const uint row = row0 + r;
            const uint tok = tok0 + t;
            float sum = subgroupAdd(acc[r * TOKENS + t]);
            if (gl_NumSubgroups > 1u) {
                if (subgroupElect()) partial[gl_SubgroupID] = sum;
                barrier();
                sum = 0.0;
                for (uint i = 0; i < gl_NumSubgroups; ++i) sum += partial[i];
                barrier();  // partial is reused for the next output
            }
            if (tid == 0u && row < p.m && tok < p.n) y[p.y_offset + tok * p.y_stride + row] = sum;
        }
    }
}

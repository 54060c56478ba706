#version 450
// RMSNorm, optionally times a weight row: y = x / sqrt(mean(x^2) + eps) * w, one row per
// workgroup (rows beyond the dispatch's x limit continue in z). y may be x (in place).
// NO_SUBGROUPS: the sum of squares reduces through shared memory alone (drivers whose subgroup
// arithmetic is turned off, vk_workarounds.h).
// ADD: the residual add before the norm in the same dispatch: s = x + b is written out (the
// residual stream) and normalized.
// ROUND: the output also rounded to the 8-bit blocks the matmuls after the norm multiply with
// (quant8.glsl's FORMAT, a specialization constant), saving their rounding dispatch.
#extension GL_GOOGLE_include_directive : require
#if !defined(NO_SUBGROUPS)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Input { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Weight { float wt[]; };
layout(std430, set = 0, binding = 2) buffer Output { float y[]; };
#if defined(ADD)
layout(std430, set = 0, binding = 3) readonly buffer Addend { float b[]; };
layout(std430, set = 0, binding = 4) buffer Sum { float s[]; };
#define ROUNDED_BINDING 5
#else
#define ROUNDED_BINDING 3
#endif
#if defined(ROUND)
layout(constant_id = 1) const uint FORMAT = 0;
#include "quant8.glsl"
layout(std430, set = 0, binding = ROUNDED_BINDING) writeonly buffer Rounded { float r[]; };
layout(std430, set = 0, binding = ROUNDED_BINDING) writeonly buffer RoundedPacked { uint rq[]; };
#endif

layout(push_constant) uniform Params {
    uint rows;
    uint cols;
    uint x_offset;  // floats
    uint x_stride;
    uint w_offset;
    uint y_offset;
    uint y_stride;
    uint has_weight;  // 0: plain RMSNorm (the weight binding is not read)
    float eps;
    uint b_offset;  // ADD: the addend and the sum, floats
    uint b_stride;
    uint s_offset;
    uint s_stride;
    uint r_offset;  // ROUND: the rounded copy, floats (words when packed)
    uint r_stride;
} p;

// Element i of the row being normalized: x, or with ADD the sum x + b, which the first pass
// writes and the second reads back (each thread only its own elements). Outputs may alias x,
// but with ADD y must not overlap x or b (the host checks).
#if defined(ADD)
float element(uint xb, uint row, uint i) {
    return x[xb + i] + b[p.b_offset + row * p.b_stride + i];
}
float normalized(uint xb, uint row, uint i) {
    return s[p.s_offset + row * p.s_stride + i];
}
#else
float element(uint xb, uint row, uint i) {
    return x[xb + i];
}
float normalized(uint xb, uint row, uint i) {
    return x[xb + i];
}
#endif

shared float partial[gl_WorkGroupSize.x];

void main() {
    const uint row = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    if (row >= p.rows) return;  // the whole workgroup
    const uint tid = gl_LocalInvocationID.x;
    const uint xb = p.x_offset + row * p.x_stride;
    const uint yb = p.y_offset + row * p.y_stride;

    float sum = 0.0;
    for (uint i = tid; i < p.cols; i += gl_WorkGroupSize.x) {
        const float v = element(xb, row, i);
#if defined(ADD)
        s[p.s_offset + row * p.s_stride + i] = v;
#endif
        sum += v * v;
    }
#if defined(NO_SUBGROUPS)
    // Halving the live range each step (any workgroup size): a thread adds the partial half a
    // range above it, which no thread writes in the same step.
    partial[tid] = sum;
    barrier();
    for (uint live = gl_WorkGroupSize.x; live > 1u;) {
        const uint half_live = (live + 1u) / 2u;
        if (tid + half_live < live) partial[tid] += partial[tid + half_live];
        barrier();
        live = half_live;
    }
    sum = partial[0];
#else
    sum = subgroupAdd(sum);
    if (gl_NumSubgroups > 1u) {
        if (subgroupElect()) partial[gl_SubgroupID] = sum;
        barrier();
        sum = 0.0;
        for (uint i = 0; i < gl_NumSubgroups; ++i) sum += partial[i];
    }
#endif
    const float scale = 1.0 / sqrt(sum / float(p.cols) + p.eps);

#if defined(ROUND)
    // Whole blocks per thread: a block's elements are normalized and written, then rounded as
    // round_activations.comp rounds them. The elements come from x (and b) again, not from s,
    // which other threads wrote.
    const uint rb = p.r_offset + row * p.r_stride;
    for (uint blk = tid; blk < p.cols / Q8_BLOCK; blk += gl_WorkGroupSize.x) {
        const uint i0 = blk * Q8_BLOCK;
        float largest = 0.0;
        for (uint j = 0; j < Q8_BLOCK; ++j) {
            const float v = p.has_weight != 0u
                                ? element(xb, row, i0 + j) * scale * wt[p.w_offset + i0 + j]
                                : element(xb, row, i0 + j) * scale;
            y[yb + i0 + j] = v;
            if (abs(v) > abs(largest)) largest = v;
        }
        float to_quant, d;
        q8_scales(largest, to_quant, d);
        if (FORMAT == 2u) {
            for (uint w4 = 0; w4 < Q8_BLOCK / 4u; ++w4) {
                uint word = 0u;
                for (uint e = 0; e < 4u; ++e)
                    word |= (uint(int(q8_quant(y[yb + i0 + 4u * w4 + e], to_quant))) & 0xffu)
                            << (8u * e);
                rq[rb + i0 / 4u + w4] = word;
            }
            rq[rb + p.cols / 4u + blk] = floatBitsToUint(d);
        } else {
            for (uint j = 0; j < Q8_BLOCK; ++j)
                r[rb + i0 + j] = q8_quant(y[yb + i0 + j], to_quant) * d;
        }
    }
    return;
#endif
    // Each thread writes only the elements it read, so y may alias x.
    if (p.has_weight != 0u) {
        for (uint i = tid; i < p.cols; i += gl_WorkGroupSize.x)
            y[yb + i] = normalized(xb, row, i) * scale * wt[p.w_offset + i];
    } else {
        for (uint i = tid; i < p.cols; i += gl_WorkGroupSize.x)
            y[yb + i] = normalized(xb, row, i) * scale;
    }
}

#version 450
// Elementwise ops over f32 tensors, one variant per op (specialization constant OP):
//   0 ADD     y = a + b   (b broadcast over rows when b_cols_only != 0)
//   1 MUL     y = a * b   (same broadcast)
//   2 SILU    y = a * sigmoid(a)
//   3 SWIGLU  y = silu(a) * b
//   4 COPY    y = a
// One invocation per element; y may be a or b (each invocation reads and writes only its own
// element). Elements beyond the x dispatch limit continue in y.
// ROUND (SWIGLU without broadcast): one invocation per block instead, which also writes y rounded
// to the 8-bit blocks the matmul after it multiplies with (quant8.glsl's FORMAT) into r.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0;

layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) buffer Y { float y[]; };

layout(push_constant) uniform Params {
    uint n;     // elements
    uint cols;  // row width, for broadcasting b
    uint a_offset;
    uint b_offset;
    uint y_offset;
    uint b_broadcast;  // b is one row, repeated for every row of a
    uint r_offset;     // ROUND: the rounded copy, floats (words when packed)
} p;

float silu(float v) {
    return v / (1.0 + exp(-v));
}

#if defined(ROUND)
layout(constant_id = 2) const uint FORMAT = 0;
#include "quant8.glsl"
layout(std430, set = 0, binding = 3) writeonly buffer Rounded { float r[]; };
layout(std430, set = 0, binding = 3) writeonly buffer RoundedPacked { uint rq[]; };

void main() {
    const uint blocks_per_row = p.cols / Q8_BLOCK;
    const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (id >= (p.n / p.cols) * blocks_per_row) return;
    const uint row = id / blocks_per_row, blk = id % blocks_per_row;
    const uint i0 = row * p.cols + blk * Q8_BLOCK;
    float largest = 0.0;
    for (uint j = 0; j < Q8_BLOCK; ++j) {
        const float v = silu(a[p.a_offset + i0 + j]) * b[p.b_offset + i0 + j];
        y[p.y_offset + i0 + j] = v;
        if (abs(v) > abs(largest)) largest = v;
    }
    float to_quant, d;
    q8_scales(largest, to_quant, d);
    if (FORMAT == 2u) {
        const uint rb = p.r_offset + row * (p.cols / 4u + p.cols / 32u);
        for (uint w4 = 0; w4 < Q8_BLOCK / 4u; ++w4) {
            uint word = 0u;
            for (uint e = 0; e < 4u; ++e)
                word |= (uint(int(q8_quant(y[p.y_offset + i0 + 4u * w4 + e], to_quant))) & 0xffu)
                        << (8u * e);
            rq[rb + blk * (Q8_BLOCK / 4u) + w4] = word;
        }
        rq[rb + p.cols / 4u + blk] = floatBitsToUint(d);
    } else {
        for (uint j = 0; j < Q8_BLOCK; ++j)
            r[p.r_offset + i0 + j] = q8_quant(y[p.y_offset + i0 + j], to_quant) * d;
    }
}
#else

void main() {
    const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= p.n) return;
    const float av = a[p.a_offset + i];
    const uint bi = p.b_offset + (p.b_broadcast != 0u ? i % p.cols : i);
    float r;
    if (OP == 0u) {
        r = av + b[bi];
    } else if (OP == 1u) {
        r = av * b[bi];
    } else if (OP == 2u) {
        r = silu(av);
    } else if (OP == 3u) {
        r = silu(av) * b[bi];
    } else {
        r = av;
    }
    y[p.y_offset + i] = r;
}
#endif

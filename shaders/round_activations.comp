#version 450
#extension GL_GOOGLE_include_directive : require
// Rounds activations to the 8-bit blocks the CPU backend (and ggml) multiplies quantized
// weights with, and writes them back as floats: y = q * d. A float dot product of these with
// the dequantized weights is then the CPU's integer dot product up to summation order, so both
// backends (and llama.cpp) compute the same model. FORMAT (a specialization constant) picks Q8_0,
// Q8_K or packed Q8_0 blocks: quant8.glsl describes them. With the packed format, offsets and
// strides of y are in words.
// One invocation per block: no barriers or shared memory, which CPU devices pay dearly for.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(std430, set = 0, binding = 1) writeonly buffer YPacked { uint yq[]; };

layout(push_constant) uniform Params {
    uint rows;
    uint cols;  // a multiple of the block
    uint x_offset;  // floats
    uint x_stride;
    uint y_offset;
    uint y_stride;
} p;

#include "quant8.glsl"

const uint BLOCK = Q8_BLOCK;

void main() {
    const uint blocks_per_row = p.cols / BLOCK;
    const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (id >= p.rows * blocks_per_row) return;
    const uint row = id / blocks_per_row;
    const uint xb = p.x_offset + row * p.x_stride + (id % blocks_per_row) * BLOCK;
    const uint yb = p.y_offset + row * p.y_stride + (id % blocks_per_row) * BLOCK;

    // The element of largest magnitude, then the block's quants.
    float largest = 0.0;
    for (uint j = 0; j < BLOCK; ++j)
        if (abs(x[xb + j]) > abs(largest)) largest = x[xb + j];
    float to_quant, d;
    q8_scales(largest, to_quant, d);
    if (FORMAT == 2u) {
        const uint b = id % blocks_per_row;
        const uint row_base = p.y_offset + row * p.y_stride;
        for (uint w = 0; w < BLOCK / 4u; ++w) {
            uint word = 0u;
            for (uint e = 0; e < 4u; ++e)
                word |= (uint(int(q8_quant(x[xb + 4u * w + e], to_quant))) & 0xffu) << (8u * e);
            yq[row_base + b * (BLOCK / 4u) + w] = word;
        }
        yq[row_base + p.cols / 4u + b] = floatBitsToUint(d);
    } else {
        for (uint j = 0; j < BLOCK; ++j) y[yb + j] = q8_quant(x[xb + j], to_quant) * d;
    }
}

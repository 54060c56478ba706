#version 450
// Rounds activations to the 8-bit blocks the CPU backend (and ggml) multiplies quantized
// weights with, and writes them back as floats: y = q * d. A float dot product of these with
// the dequantized weights is then the CPU's integer dot product up to summation order, so both
// backends (and llama.cpp) compute the same model. FORMAT (specialization constant):
//   0 Q8_0: blocks of 32, d = amax / 127 stored as fp16, q = x / d rounded half away from zero;
//   1 Q8_K: blocks of 256, iscale = -127 / (the element of largest magnitude), q = x * iscale
//     rounded half to even, at most 127, d = 1 / iscale (f32);
//   2 Q8_0 packed, for the integer dot-product matmuls: the same blocks as 0, written as they are
//     (not multiplied out): per row cols / 4 words of four int8 quants, then cols / 32 words of
//     f32 scales. Offsets and strides are then in words.
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

const uint BLOCK = FORMAT == 1u ? 256u : 32u;

// float -> fp16 -> float with round-to-nearest-even, in integer operations (the conversion
// instructions' rounding is left to the implementation). For the positive normal and subnormal
// half range that block scales occupy.
float round_to_half(float v) {
    const uint b = floatBitsToUint(v);
    const int e = int((b >> 23) & 255u) - 127;  // unbiased exponent
    if (v == 0.0 || e < -25) return 0.0;
    // Bits of the float mantissa that a half (10 bits, fewer when subnormal) drops.
    const uint drop = uint(13 + max(0, -14 - e));
    const uint mant = (b & 0x7fffffu) | 0x800000u;
    const uint keep = mant >> drop;
    const uint rest = mant & ((1u << drop) - 1u);
    const uint halfway = 1u << (drop - 1u);
    const uint rounded = keep + ((rest > halfway || (rest == halfway && (keep & 1u) != 0u)) ? 1u : 0u);
    return ldexp(float(rounded), e - 23 + int(drop));
}

float round_half_away(float v) {
    const float t = trunc(v);
    return abs(v - t) >= 0.5 ? t + sign(v) : t;
}

void main() {
    const uint blocks_per_row = p.cols / BLOCK;
    const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (id >= p.rows * blocks_per_row) return;
    const uint row = id / blocks_per_row;
    const uint xb = p.x_offset + row * p.x_stride + (id % blocks_per_row) * BLOCK;
    const uint yb = p.y_offset + row * p.y_stride + (id % blocks_per_row) * BLOCK;

    if (FORMAT == 2u) {
        const uint b = id % blocks_per_row;
        const uint row_base = p.y_offset + row * p.y_stride;
        float amax = 0.0;
        for (uint j = 0; j < BLOCK; ++j) amax = max(amax, abs(x[xb + j]));
        const float d = amax / 127.0;
        const float id_ = d != 0.0 ? 1.0 / d : 0.0;
        for (uint w = 0; w < BLOCK / 4u; ++w) {
            uint word = 0u;
            for (uint e = 0; e < 4u; ++e) {
                const int q = int(round_half_away(x[xb + 4u * w + e] * id_));
                word |= (uint(q) & 0xffu) << (8u * e);
            }
            yq[row_base + b * (BLOCK / 4u) + w] = word;
        }
        yq[row_base + p.cols / 4u + b] = floatBitsToUint(round_to_half(d));
    } else if (FORMAT == 0u) {
        float amax = 0.0;
        for (uint j = 0; j < BLOCK; ++j) amax = max(amax, abs(x[xb + j]));
        const float d = amax / 127.0;
        const float id_ = d != 0.0 ? 1.0 / d : 0.0;
        const float dh = round_to_half(d);
        for (uint j = 0; j < BLOCK; ++j) y[yb + j] = round_half_away(x[xb + j] * id_) * dh;
    } else {
        float amax = 0.0;
        float largest = 0.0;
        for (uint j = 0; j < BLOCK; ++j) {
            const float v = x[xb + j];
            if (abs(v) > amax) {
                amax = abs(v);
                largest = v;
            }
        }
        if (amax == 0.0) {
            for (uint j = 0; j < BLOCK; ++j) y[yb + j] = 0.0;
            return;
        }
        const float iscale = -127.0 / largest;
        const float d = 1.0 / iscale;
        for (uint j = 0; j < BLOCK; ++j) y[yb + j] = min(127.0, roundEven(iscale * x[xb + j])) * d;
    }
}

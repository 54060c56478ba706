// Reading GGUF weight blocks from a storage buffer of 32-bit words. Blocks are only 2-byte
// aligned (Q4_0 is 18 bytes, Q6_K 210, an F16 row may have an odd length), so every field is read
// with aligned uint32 loads and shifts, which needs no 8/16-bit storage feature. The weights are
// binding 0 of every shader that includes this file.
#ifndef MLLM_WEIGHTS_GLSL
#define MLLM_WEIGHTS_GLSL

#if defined(TEXEL_WEIGHTS)
// A uniform texel buffer of 16-byte texels (R32G32B32A32_UINT), for CPU devices: llvmpipe
// (lavapipe) fetches texels for all SIMD lanes with straight-line gathers, where a storage-buffer
// load whose address differs per lane is a loop over the lanes with a branch per element.
layout(set = 0, binding = 0) uniform usamplerBuffer weight_texels;
uvec4 weight_quad(uint i) { return texelFetch(weight_texels, int(i)); }
uint weight_word(uint i) { return weight_quad(i >> 2)[i & 3u]; }
#else
layout(std430, set = 0, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, set = 0, binding = 0) readonly buffer Weights4 { uvec4 w4[]; };
uint weight_word(uint i) { return w[i]; }
uvec4 weight_quad(uint i) { return w4[i]; }
#endif

// Four bytes at an even byte offset. At an offset of 2 mod 4 the second word is read too; it
// holds the last two bytes, so a binding rounded up to whole words covers it.
uint load_u32(uint byte_offset) {
    const uint i = byte_offset >> 2;
    if ((byte_offset & 2u) == 0u) return weight_word(i);
    return (weight_word(i) >> 16) | (weight_word(i + 1u) << 16);
}

// One byte at any offset (packed scales), from the word that holds it.
uint load_u8(uint byte_offset) {
    return (weight_word(byte_offset >> 2) >> ((byte_offset & 3u) * 8u)) & 0xffu;
}

int load_i8(uint byte_offset) {
    return int(load_u8(byte_offset) << 24) >> 24;
}

// IEEE half bits to float, exactly as core/fp16.h: unpackHalf2x16 may flush half subnormals
// (Vulkan leaves fp16 denormals to the implementation), and tiny scales must survive.
float half_to_float(uint h) {
    const uint sign = (h & 0x8000u) << 16;
    const uint e = (h >> 10) & 31u;
    const uint mant = h & 0x3ffu;
    const float subnormal = float(mant) * 5.9604644775390625e-8;  // mant * 2^-24: a normal float
    if (e == 0u) return uintBitsToFloat(sign | floatBitsToUint(subnormal));
    if (e == 31u) return uintBitsToFloat(sign | 0x7f800000u | (mant << 13));
    return uintBitsToFloat(sign | ((e + 112u) << 23) | (mant << 13));
}

// An fp16 value at an even byte offset.
float load_half(uint byte_offset) {
    return half_to_float((weight_word(byte_offset >> 2) >> ((byte_offset & 2u) * 8u)) & 0xffffu);
}

// The four signed bytes of a word, in memory order.
vec4 unpack_i8x4(uint q) {
    return vec4((ivec4(int(q)) << ivec4(24, 16, 8, 0)) >> 24);
}

// The four bytes of a word, in memory order.
uvec4 unpack_u8x4(uint q) {
    return (uvec4(q) >> uvec4(0, 8, 16, 24)) & 0xffu;
}

#endif

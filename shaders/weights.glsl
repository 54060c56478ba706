// Reading GGUF weight blocks from a storage buffer of 32-bit words. Blocks of the simple formats
// are 18 (Q4_0) or 34 (Q8_0) bytes, so they are only 2-byte aligned: every field is read with
// aligned uint32 loads and shifts, which needs no 8/16-bit storage feature. The including shader
// declares `uint w[]` (the weights) before including this file.
#ifndef MLLM_WEIGHTS_GLSL
#define MLLM_WEIGHTS_GLSL

// Four bytes at an even byte offset.
uint load_u32(uint byte_offset) {
    const uint i = byte_offset >> 2;
    if ((byte_offset & 2u) == 0u) return w[i];
    return (w[i] >> 16) | (w[i + 1u] << 16);
}

// An fp16 value at an even byte offset.
float load_half(uint byte_offset) {
    return unpackHalf2x16(w[byte_offset >> 2] >> ((byte_offset & 2u) * 8u)).x;
}

// The four signed bytes of a word, in memory order.
vec4 unpack_i8x4(uint q) {
    return vec4((ivec4(int(q)) << ivec4(24, 16, 8, 0)) >> 24);
}

#endif

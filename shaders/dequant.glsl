// Dequantizing GGUF weight rows in registers, for one weight type per compiled variant
// (-DWEIGHT_F32, _F16, _BF16, _Q8_0, _Q4_0, _Q4_1, _Q5_0, _Q4_K, _Q5_K, _Q6_K). Layouts are
// ggml's, as core/quant/blocks.h spells them, and values are computed with the reference's
// operations in its order (core/quant dequantize_row), `precise` so that no multiply-add is
// fused: an embedding row comes out bit-identical to the CPU's.
//
// A row is read in chunks of 8 elements: chunk c gives two vec4 of 4 consecutive elements each,
// starting at elements i0 and i1 of the row (for nibble formats the two halves of a byte belong
// to elements 16 or 32 apart). A chunk never straddles blocks. Float rows may end in a partial
// chunk: dequant_one reads its elements. The includer includes weights.glsl first.
#ifndef MLLM_DEQUANT_GLSL
#define MLLM_DEQUANT_GLSL

#if defined(WEIGHT_F32) || defined(WEIGHT_F16) || defined(WEIGHT_BF16)
#define FLOAT_WEIGHTS 1
#endif

// Elements and bytes per block (a plain element for the float types).
#if defined(WEIGHT_F32)
const uint BLOCK_ELEMS = 1u, BLOCK_BYTES = 4u;
#elif defined(WEIGHT_F16) || defined(WEIGHT_BF16)
const uint BLOCK_ELEMS = 1u, BLOCK_BYTES = 2u;
#elif defined(WEIGHT_Q8_0)
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 34u;
#elif defined(WEIGHT_Q4_0)
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 18u;
#elif defined(WEIGHT_Q4_1)
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 20u;
#elif defined(WEIGHT_Q5_0)
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 22u;
#elif defined(WEIGHT_Q4_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 144u;
#elif defined(WEIGHT_Q5_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 176u;
#elif defined(WEIGHT_Q6_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 210u;
#else
#error "define one WEIGHT_* type"
#endif

uint row_bytes(uint k) {
    return (k / BLOCK_ELEMS) * BLOCK_BYTES;
}

// Where chunk c's two vec4 start in the row.
void chunk_index(uint c, out uint i0, out uint i1) {
#if defined(FLOAT_WEIGHTS) || defined(WEIGHT_Q8_0)
    i0 = 8u * c;  // 8 consecutive elements
    i1 = i0 + 4u;
#elif defined(WEIGHT_Q4_0) || defined(WEIGHT_Q4_1) || defined(WEIGHT_Q5_0)
    // Quarter s of a block: bytes 4s..4s+3 of qs, low nibbles elements 4s.., high ones 4s+16..
    i0 = (c >> 2) * 32u + 4u * (c & 3u);
    i1 = i0 + 16u;
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
    // 64-element run j of a super-block, bytes 4s..4s+3 of its 32: low nibbles elements
    // 64j + 4s.., high ones 32 further.
    const uint j = (c >> 3) & 3u;
    i0 = (c >> 5) * 256u + 64u * j + 4u * (c & 7u);
    i1 = i0 + 32u;
#elif defined(WEIGHT_Q6_K)
    // Half h (128 elements), ql bytes 32g + 4s..: low nibbles elements 32g + 4s.., high ones 64
    // further.
    const uint h = (c >> 4) & 1u;
    const uint g = (c >> 3) & 1u;
    i0 = (c >> 5) * 256u + 128u * h + 32u * g + 4u * (c & 7u);
    i1 = i0 + 64u;
#endif
}

#if defined(WEIGHT_F16)
vec2 unpack_f16x2(uint u) {
    return vec2(half_to_float(u & 0xffffu), half_to_float(u >> 16));
}
#elif defined(WEIGHT_BF16)
vec2 unpack_bf16x2(uint u) {
    return vec2(uintBitsToFloat(u << 16), uintBitsToFloat(u & 0xffff0000u));
}
#endif

#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
// Sub-block j's 6-bit scale and min from the 12 packed bytes at `at` (ggml's get_scale_min_k4).
uvec2 scale_min_k4(uint at, uint j) {
    if (j < 4u) return uvec2(load_u8(at + j) & 63u, load_u8(at + j + 4u) & 63u);
    const uint hi = load_u8(at + j + 4u);
    return uvec2((hi & 15u) | ((load_u8(at + j - 4u) >> 6) << 4),
                 (hi >> 4) | ((load_u8(at + j) >> 6) << 4));
}
#endif

// Chunk c of the row whose first byte is at row_base in w.
void dequant_chunk(uint row_base, uint c, out vec4 w0, out vec4 w1) {
#if defined(WEIGHT_F32)
    const uint at = row_base + 32u * c;
    w0 = uintBitsToFloat(uvec4(load_u32(at), load_u32(at + 4u), load_u32(at + 8u),
                               load_u32(at + 12u)));
    w1 = uintBitsToFloat(uvec4(load_u32(at + 16u), load_u32(at + 20u), load_u32(at + 24u),
                               load_u32(at + 28u)));
#elif defined(WEIGHT_F16)
    const uint at = row_base + 16u * c;
    w0 = vec4(unpack_f16x2(load_u32(at)), unpack_f16x2(load_u32(at + 4u)));
    w1 = vec4(unpack_f16x2(load_u32(at + 8u)), unpack_f16x2(load_u32(at + 12u)));
#elif defined(WEIGHT_BF16)
    const uint at = row_base + 16u * c;
    w0 = vec4(unpack_bf16x2(load_u32(at)), unpack_bf16x2(load_u32(at + 4u)));
    w1 = vec4(unpack_bf16x2(load_u32(at + 8u)), unpack_bf16x2(load_u32(at + 12u)));
#elif defined(WEIGHT_Q8_0)
    // d, then 32 int8.
    const uint blk = row_base + (c >> 2) * BLOCK_BYTES;
    const uint s = c & 3u;
    const float d = load_half(blk);
    precise vec4 a = unpack_i8x4(load_u32(blk + 2u + 8u * s)) * d;
    precise vec4 b = unpack_i8x4(load_u32(blk + 6u + 8u * s)) * d;
    w0 = a;
    w1 = b;
#elif defined(WEIGHT_Q4_0)
    // d, then 16 bytes of nibbles: x = (q - 8) d.
    const uint blk = row_base + (c >> 2) * BLOCK_BYTES;
    const uvec4 q = unpack_u8x4(load_u32(blk + 2u + 4u * (c & 3u)));
    const float d = load_half(blk);
    precise vec4 a = (vec4(q & 15u) - 8.0) * d;
    precise vec4 b = (vec4(q >> 4) - 8.0) * d;
    w0 = a;
    w1 = b;
#elif defined(WEIGHT_Q4_1)
    // d, m, then 16 bytes of nibbles: x = q d + m.
    const uint blk = row_base + (c >> 2) * BLOCK_BYTES;
    const uvec4 q = unpack_u8x4(load_u32(blk + 4u + 4u * (c & 3u)));
    const float d = load_half(blk);
    const float m = load_half(blk + 2u);
    precise vec4 a = vec4(q & 15u) * d + m;
    precise vec4 b = vec4(q >> 4) * d + m;
    w0 = a;
    w1 = b;
#elif defined(WEIGHT_Q5_0)
    // d, qh (bit j: the fifth bit of element j), then 16 bytes of nibbles: x = (q - 16) d.
    const uint blk = row_base + (c >> 2) * BLOCK_BYTES;
    const uint s = c & 3u;
    const uvec4 q = unpack_u8x4(load_u32(blk + 6u + 4u * s));
    const uint qh = load_u32(blk + 2u);
    const uvec4 bit = uvec4(0u, 1u, 2u, 3u) + 4u * s;
    const uvec4 lo = (q & 15u) | (((uvec4(qh) >> bit) & 1u) << 4);
    const uvec4 hi = (q >> 4) | (((uvec4(qh) >> (bit + 16u)) & 1u) << 4);
    const float d = load_half(blk);
    precise vec4 a = (vec4(lo) - 16.0) * d;
    precise vec4 b = (vec4(hi) - 16.0) * d;
    w0 = a;
    w1 = b;
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
    // d, dmin, 12 bytes of packed scales and mins, [Q5_K: 32 bytes qh,] 128 bytes of nibbles:
    // x = (d sc) q - (dmin m) per 32-element sub-block.
    const uint blk = row_base + (c >> 5) * BLOCK_BYTES;
    const uint j = (c >> 3) & 3u;
    const uint s = c & 7u;
    const uint dm = load_u32(blk);
    const float d = half_to_float(dm & 0xffffu);
    const float dmin = half_to_float(dm >> 16);
    const uvec2 sm0 = scale_min_k4(blk + 4u, 2u * j);
    const uvec2 sm1 = scale_min_k4(blk + 4u, 2u * j + 1u);
    precise float d0 = d * float(sm0.x);
    precise float m0 = dmin * float(sm0.y);
    precise float d1 = d * float(sm1.x);
    precise float m1 = dmin * float(sm1.y);
#if defined(WEIGHT_Q4_K)
    const uvec4 q = unpack_u8x4(load_u32(blk + 16u + 32u * j + 4u * s));
    const uvec4 lo = q & 15u;
    const uvec4 hi = q >> 4;
#else
    // Bit 2j of qh byte l is the fifth bit of element l of run j, bit 2j+1 that of l + 32.
    const uvec4 q = unpack_u8x4(load_u32(blk + 48u + 32u * j + 4u * s));
    const uvec4 qh = unpack_u8x4(load_u32(blk + 16u + 4u * s));
    const uvec4 lo = (q & 15u) | (((qh >> (2u * j)) & 1u) << 4);
    const uvec4 hi = (q >> 4) | (((qh >> (2u * j + 1u)) & 1u) << 4);
#endif
    precise vec4 a = d0 * vec4(lo) - m0;
    precise vec4 b = d1 * vec4(hi) - m1;
    w0 = a;
    w1 = b;
#elif defined(WEIGHT_Q6_K)
    // 128 bytes ql (low nibbles), 64 bytes qh (2 high bits), 16 int8 scales, d:
    // x = (d scale) (q - 32) per 16-element sub-block.
    const uint blk = row_base + (c >> 5) * BLOCK_BYTES;
    const uint h = (c >> 4) & 1u;
    const uint g = (c >> 3) & 1u;
    const uint s = c & 7u;
    const uvec4 ql = unpack_u8x4(load_u32(blk + 64u * h + 32u * g + 4u * s));
    const uvec4 qh = unpack_u8x4(load_u32(blk + 128u + 32u * h + 4u * s));
    const uvec4 lo = (ql & 15u) | (((qh >> (2u * g)) & 3u) << 4);
    const uvec4 hi = (ql >> 4) | (((qh >> (2u * g + 4u)) & 3u) << 4);
    const uint sc = blk + 192u + 8u * h + 2u * g + (s >> 2);
    const float d = load_half(blk + 208u);
    precise float d0 = d * float(load_i8(sc));
    precise float d1 = d * float(load_i8(sc + 4u));
    precise vec4 a = d0 * (vec4(lo) - 32.0);
    precise vec4 b = d1 * (vec4(hi) - 32.0);
    w0 = a;
    w1 = b;
#endif
}

#if defined(FLOAT_WEIGHTS)
// Element i of a float row (the tail of a row whose length is not a multiple of 8).
float dequant_one(uint row_base, uint i) {
#if defined(WEIGHT_F32)
    return uintBitsToFloat(load_u32(row_base + 4u * i));
#elif defined(WEIGHT_F16)
    return load_half(row_base + 2u * i);
#else
    const uint at = row_base + 2u * i;
    return uintBitsToFloat(((weight_word(at >> 2) >> ((at & 2u) * 8u)) & 0xffffu) << 16);
#endif
}
#endif

// Activations as the CPU backend multiplies them with these weights: for F16 and BF16 rounded
// to the weights' precision (round to nearest even), as ggml does; otherwise unchanged. Integer
// arithmetic, so neither the rounding mode nor denormal flushing of the device matters.
float round_activation(float v) {
#if defined(WEIGHT_F16)
    const uint x = floatBitsToUint(v);
    const uint sign = x & 0x80000000u;
    const uint a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return v;                                      // NaN
    if (a >= 0x477ff000u) return uintBitsToFloat(sign | 0x7f800000u);  // rounds to infinity
    if (a < 0x38800000u) {
        // A half subnormal: the nearest multiple of 2^-24, ties to even.
        const uint e = a >> 23;
        if (e < 102u) return uintBitsToFloat(sign);  // below 2^-25: rounds to zero
        const uint mant = (a & 0x7fffffu) | 0x800000u;
        const uint shift = 126u - e;  // 14..24
        uint q = mant >> shift;
        const uint rest = mant & ((1u << shift) - 1u);
        const uint half_ulp = 1u << (shift - 1u);
        if (rest > half_ulp || (rest == half_ulp && (q & 1u) != 0u)) q += 1u;
        return uintBitsToFloat(sign | floatBitsToUint(float(q) * 5.9604644775390625e-8));
    }
    return uintBitsToFloat(sign | ((a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu));
#elif defined(WEIGHT_BF16)
    const uint x = floatBitsToUint(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) return v;  // NaN
    return uintBitsToFloat((x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u);
#else
    return v;
#endif
}

vec4 round_activation(vec4 v) {
#if defined(WEIGHT_F16) || defined(WEIGHT_BF16)
    return vec4(round_activation(v.x), round_activation(v.y), round_activation(v.z),
                round_activation(v.w));
#else
    return v;
#endif
}

#endif

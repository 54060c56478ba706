// Rounding activations to ggml's 8-bit blocks exactly as the CPU backend does, shared by
// round_activations.comp and rms_norm.comp (ROUND). FORMAT (a specialization constant of the
// includer):
//   0 Q8_0: blocks of 32, d = amax / 127 stored as fp16, q = x / d rounded half away from zero,
//     written back as floats q * d;
//   1 Q8_K: blocks of 256, iscale = -127 / (the element of largest magnitude), q = x * iscale
//     rounded half to even, at most 127, d = 1 / iscale (f32), written back as floats q * d;
//   2 Q8_0 packed, for the integer dot-product matmuls: Q8_0's blocks as they are, per row
//     cols / 4 words of four int8 quants, then cols / 32 words of f32 scales.
#ifndef MLLM_QUANT8_GLSL
#define MLLM_QUANT8_GLSL

const uint Q8_BLOCK = FORMAT == 1u ? 256u : 32u;

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

// A block's scales from its element of largest magnitude (`largest`, signed; amax = its
// magnitude): `to_quant` multiplies an element into its quant's range, `d` multiplies the
// quant back.
void q8_scales(float largest, out float to_quant, out float d) {
    if (FORMAT == 1u) {
        to_quant = largest != 0.0 ? -127.0 / largest : 0.0;
        d = largest != 0.0 ? 1.0 / to_quant : 0.0;
    } else {
        const float exact = abs(largest) / 127.0;
        to_quant = exact != 0.0 ? 1.0 / exact : 0.0;
        d = round_to_half(exact);
    }
}

// An element's quant.
float q8_quant(float v, float to_quant) {
    return FORMAT == 1u ? min(127.0, roundEven(to_quant * v)) : round_half_away(v * to_quant);
}

#endif

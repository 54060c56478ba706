#pragma once
// IEEE half and bfloat16 conversions, round-to-nearest-even like the hardware instructions
// (F16C's vcvtps2ph) that ggml uses, so quantized files we write are bit-exact with ggml's.
#include <bit>
#include <cstdint>

namespace mllm {

inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24, exact in float.
        const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
        return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(v));
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t fp32_to_fp16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    uint32_t abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN stays a (quiet) NaN
    if (abs >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
    if (abs < 0x38800000u) {
        // Below the smallest normal half (2^-14): adding 0.5 aligns the float's ulp (2^-24)
        // with the half subnormal ulp, so the FPU does the round-to-nearest-even for us.
        const float v = std::bit_cast<float>(abs) + 0.5f;
        return sign | static_cast<uint16_t>(std::bit_cast<uint32_t>(v) - 0x3f000000u);
    }
    const uint32_t odd = (abs >> 13) & 1u;
    abs += 0xfffu + odd - (112u << 23);
    return sign | static_cast<uint16_t>(abs >> 13);
}

inline float bf16_to_fp32(uint16_t h) {
    return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

inline uint16_t fp32_to_bf16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return static_cast<uint16_t>((u >> 16) | 64u);  // quiet NaN
    return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

}  // namespace mllm

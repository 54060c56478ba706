// Reference quantize/dequantize: hand-built blocks, fp16/bf16 edge cases, round-trip error
// bounds, and byte-for-byte agreement with the files llama.cpp's llama-quantize wrote.
#include "core/quant/quant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/gguf/gguf_reader.h"
#include "core/quant/blocks.h"
#include "tests/support/test_env.h"

namespace mllm {
namespace {

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                  DType::Q4_1, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<uint8_t> quantize(DType type, const std::vector<float>& x) {
    std::vector<uint8_t> q(row_bytes(type, static_cast<int64_t>(x.size())));
    quantize_row(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
    return q;
}

std::vector<float> dequantize(DType type, const std::vector<uint8_t>& q, size_t n) {
    std::vector<float> y(n);
    dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(n));
    return y;
}

template <typename Block>
std::vector<float> dequantize_block(DType type, const Block& block, int n) {
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(type, &block, y.data(), n);
    return y;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> x(n);
    for (float& v : x) v = dist(rng);
    return x;
}

// RMS of the round-trip error relative to the RMS of the data.
double relative_rms_error(DType type, const std::vector<float>& x) {
    const std::vector<float> y = dequantize(type, quantize(type, x), x.size());
    double err = 0;
    double ref = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
        ref += static_cast<double>(x[i]) * x[i];
    }
    return std::sqrt(err / ref);
}

// ---------------------------------------------------------------------------------------------
// Hand-built blocks: bytes written per the documented layout, expected floats computed by hand.

TEST(QuantDequantize, Q4_0HandBlock) {
    BlockQ4_0 b{};
    b.d = 0x3800;  // 0.5
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    const std::vector<float> y = dequantize_block(DType::Q4_0, b, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;
        EXPECT_EQ(y[j + 16], (7 - j) * 0.5f) << j;
    }
    EXPECT_EQ(y[0], -4.0f);
    EXPECT_EQ(y[16], 3.5f);
}

TEST(QuantDequantize, Q4_1HandBlock) {
    BlockQ4_1 b{};
    b.d = 0x3400;  // 0.25
    b.m = 0xbc00;  // -1
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    const std::vector<float> y = dequantize_block(DType::Q4_1, b, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], j * 0.25f - 1.0f) << j;
        EXPECT_EQ(y[j + 16], (15 - j) * 0.25f - 1.0f) << j;
    }
    EXPECT_EQ(y[16], 2.75f);
}

TEST(QuantDequantize, Q5_0HandBlock) {
    BlockQ5_0 b{};
    b.d = 0x4000;  // 2
    // Fifth bits: elements 0..7 and 24..31 set (qh little-endian: bytes 0 and 3).
    b.qh[0] = 0xff;
    b.qh[3] = 0xff;
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | (j << 4));
    const std::vector<float> y = dequantize_block(DType::Q5_0, b, 32);
    for (int j = 0; j < 32; ++j) {
        const int high = (j < 8 || j >= 24) ? 16 : 0;
        EXPECT_EQ(y[j], static_cast<float>(((j % 16) | high) - 16) * 2.0f) << j;
    }
    EXPECT_EQ(y[0], 0.0f);    // 16 - 16
    EXPECT_EQ(y[8], -16.0f);  // 8 - 16
    EXPECT_EQ(y[31], 30.0f);  // 31 - 16
}

TEST(QuantDequantize, Q8_0HandBlock) {
    BlockQ8_0 b{};
    b.d = 0xb800;  // -0.5
    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
    const std::vector<float> y = dequantize_block(DType::Q8_0, b, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * -0.5f) << j;
    EXPECT_EQ(y[0], 64.0f);
}

// Scales and mins of the K formats, with 6-bit values above 15 in sub-blocks 4..7 so that the
// high bits packed into bytes 0..7 matter.
constexpr uint8_t kSc[8] = {1, 2, 3, 4, 17, 33, 49, 63};
constexpr uint8_t kMin[8] = {0, 5, 10, 15, 20, 40, 60, 63};
// kSc / kMin packed by hand: bytes 0..3 = sc[j] | (sc[j+4] >> 4) << 6, bytes 4..7 the same for
// the mins, bytes 8..11 = (sc[j+4] & 15) | (m[j+4] & 15) << 4.
constexpr uint8_t kPackedScales[12] = {0x41, 0x82, 0xc3, 0xc4, 0x40, 0x85,
                                       0xca, 0xcf, 0x41, 0x81, 0xc1, 0xff};

TEST(QuantDequantize, Q4_KHandBlock) {
    BlockQ4_K b{};
    b.d = 0x3c00;     // 1
    b.dmin = 0x3800;  // 0.5
    std::memcpy(b.scales, kPackedScales, 12);
    for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>(i * 37 + 11);
    const std::vector<float> y = dequantize_block(DType::Q4_K, b, 256);
    for (int e = 0; e < 256; ++e) {
        // Byte (e / 64) * 32 + e % 32; low nibble for the first 32 of each 64, high after.
        const uint8_t byte = b.qs[(e / 64) * 32 + e % 32];
        const int q = (e % 64) < 32 ? (byte & 15) : (byte >> 4);
        const int sub = e / 32;
        EXPECT_EQ(y[e], static_cast<float>(kSc[sub] * q) - 0.5f * kMin[sub]) << e;
    }
    // qs[0] = 11: element 0 is 1 * 11 - 0, element 32 is 2 * 0 - 2.5.
    EXPECT_EQ(y[0], 11.0f);
    EXPECT_EQ(y[32], -2.5f);
    // qs[127] = (127 * 37 + 11) & 255 = 98 = 0x62: element 255 (sub-block 7) is 63 * 6 - 31.5.
    EXPECT_EQ(y[255], 346.5f);
}

TEST(QuantDequantize, Q5_KHandBlock) {
    BlockQ5_K b{};
    b.d = 0x3c00;     // 1
    b.dmin = 0x3800;  // 0.5
    std::memcpy(b.scales, kPackedScales, 12);
    for (int i = 0; i < 32; ++i) b.qh[i] = static_cast<uint8_t>(i * 73 + 5);
    for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>(i * 37 + 11);
    const std::vector<float> y = dequantize_block(DType::Q5_K, b, 256);
    for (int e = 0; e < 256; ++e) {
        const uint8_t byte = b.qs[(e / 64) * 32 + e % 32];
        const bool first_half = (e % 64) < 32;
        const int bit = (b.qh[e % 32] >> (2 * (e / 64) + (first_half ? 0 : 1))) & 1;
        const int q = (first_half ? (byte & 15) : (byte >> 4)) | (bit << 4);
        const int sub = e / 32;
        EXPECT_EQ(y[e], static_cast<float>(kSc[sub] * q) - 0.5f * kMin[sub]) << e;
    }
    // qh[0] = 5 = 0b101: elements 0 and 64 have their fifth bit, 32 and 96 do not.
    EXPECT_EQ(y[0], 27.0f);   // (11 | 16) * 1
    EXPECT_EQ(y[32], -2.5f);  // 0 * 2 - 2.5
    EXPECT_EQ(y[64], 3 * 27.0f - 5.0f);
}

TEST(QuantDequantize, Q6_KHandBlock) {
    BlockQ6_K b{};
    b.d = 0x3800;  // 0.5
    for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>(i * 37 + 11);
    for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>(i * 73 + 5);
    for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<int8_t>(i % 2 ? -3 * i : 5 * i - 128);
    const std::vector<float> y = dequantize_block(DType::Q6_K, b, 256);
    for (int e = 0; e < 256; ++e) {
        // Per 128: quarter k of l in 0..31 takes ql[l + 32 * (k & 1)] (low nibble for k < 2)
        // and bits 2k, 2k+1 of qh[l].
        const int h = e / 128;
        const int k = (e % 128) / 32;
        const int l = e % 32;
        const uint8_t lo = b.ql[64 * h + l + 32 * (k & 1)];
        const int nibble = k < 2 ? (lo & 15) : (lo >> 4);
        const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
        const int q = (nibble | (high << 4)) - 32;
        EXPECT_EQ(y[e], 0.5f * b.scales[e / 16] * q) << e;
    }
    // Element 0: ql[0] = 11, qh[0] = 5 -> bits 01 -> q = 11 + 16 - 32 = -5, scale -128.
    EXPECT_EQ(y[0], 320.0f);
}

TEST(QuantDequantize, Q8_KHandBlock) {
    BlockQ8_K b{};
    b.d = 0.25f;
    for (int i = 0; i < 256; ++i) b.qs[i] = static_cast<int8_t>(i - 128);
    const std::vector<float> y = dequantize_block(DType::Q8_K, b, 256);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], (i - 128) * 0.25f) << i;
}

// ---------------------------------------------------------------------------------------------
// Hand-computed quantization of the simple formats.

TEST(QuantQuantize, Q4_0HandBytes) {
    // Values -8..7 twice: the first -8 is the signed max, so d = -8 / -8 = 1, level = x + 8.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16 - 8);
    const std::vector<uint8_t> q = quantize(DType::Q4_0, x);
    BlockQ4_0 b;
    std::memcpy(&b, q.data(), sizeof(b));
    EXPECT_EQ(b.d, 0x3c00);
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], 0x11 * j) << j;
}

TEST(QuantQuantize, Q4_0NegativeScale) {
    // A positive extreme gives a negative d: 4.0 maps to level 0 (-8 * -0.5).
    std::vector<float> x(32, 0.0f);
    x[3] = 4.0f;
    x[20] = -3.5f;
    const std::vector<uint8_t> q = quantize(DType::Q4_0, x);
    BlockQ4_0 b;
    std::memcpy(&b, q.data(), sizeof(b));
    EXPECT_EQ(b.d, 0xb800);       // -0.5
    EXPECT_EQ(b.qs[3] & 15, 0);   // 4 / -0.5 + 8 = -8 + 8
    EXPECT_EQ(b.qs[4] >> 4, 15);  // -3.5 / -0.5 + 8.5 = 15.5 -> 15
    EXPECT_EQ(b.qs[0], 0x88);     // zeros sit on level 8
}

TEST(QuantQuantize, Q4_1HandBytes) {
    // -1 .. 2.75 in steps of 0.25: d = 3.75 / 15 = 0.25, m = -1, level = (x + 1) * 4.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16) * 0.25f - 1.0f;
    const std::vector<uint8_t> q = quantize(DType::Q4_1, x);
    BlockQ4_1 b;
    std::memcpy(&b, q.data(), sizeof(b));
    EXPECT_EQ(b.d, 0x3400);
    EXPECT_EQ(b.m, 0xbc00);
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], 0x11 * j) << j;
}

TEST(QuantQuantize, Q5_0HandBytes) {
    // -16..15: d = -16 / -16 = 1, level = x + 16 = j; elements 16..31 have the fifth bit.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
    const std::vector<uint8_t> q = quantize(DType::Q5_0, x);
    BlockQ5_0 b;
    std::memcpy(&b, q.data(), sizeof(b));
    EXPECT_EQ(b.d, 0x3c00);
    EXPECT_EQ(b.qh[0], 0x00);
    EXPECT_EQ(b.qh[1], 0x00);
    EXPECT_EQ(b.qh[2], 0xff);
    EXPECT_EQ(b.qh[3], 0xff);
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], 0x11 * j) << j;
}

TEST(QuantQuantize, Q8_0HandBytes) {
    // amax 127 gives d = 1 and levels equal to the values; roundf rounds halves away from 0.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j * 8 - 127);
    x[5] = 2.5f;
    x[6] = -2.5f;
    x[7] = 3.49f;
    const std::vector<uint8_t> q = quantize(DType::Q8_0, x);
    BlockQ8_0 b;
    std::memcpy(&b, q.data(), sizeof(b));
    EXPECT_EQ(b.d, 0x3c00);
    EXPECT_EQ(b.qs[0], -127);
    EXPECT_EQ(b.qs[31], 121);
    EXPECT_EQ(b.qs[5], 3);
    EXPECT_EQ(b.qs[6], -3);
    EXPECT_EQ(b.qs[7], 3);
    // The activation entry point is the same quantizer.
    std::vector<uint8_t> act(q.size());
    quantize_row_q8_0(x.data(), act.data(), 32);
    EXPECT_EQ(act, q);
}

TEST(QuantQuantize, Q8_KLevelsAndSums) {
    std::vector<float> x = gaussian(512, 7);
    x[100] = 8.0f;  // the signed max of block 0 is positive, so d is negative
    std::vector<BlockQ8_K> q(2);
    quantize_row_q8_k(x.data(), q.data(), 512);
    EXPECT_EQ(q[0].d, 1.0f / (-127.0f / 8.0f));
    EXPECT_EQ(q[0].qs[100], -127);
    for (int b = 0; b < 2; ++b) {
        for (int g = 0; g < 16; ++g) {
            int sum = 0;
            for (int i = 0; i < 16; ++i) sum += q[b].qs[16 * g + i];
            EXPECT_EQ(q[b].bsums[g], sum) << b << " " << g;
        }
        for (int i = 0; i < 256; ++i) {
            // Levels are round-to-nearest of x / d, so the error is at most half a step.
            EXPECT_LE(std::fabs(q[b].d * q[b].qs[i] - x[256 * b + i]),
                      0.5f * std::fabs(q[b].d) * 1.0001f);
        }
    }
    // quantize_row(Q8_K) is the same quantizer.
    std::vector<uint8_t> via_dispatch(row_bytes(DType::Q8_K, 512));
    quantize_row(DType::Q8_K, x.data(), via_dispatch.data(), 512);
    EXPECT_EQ(std::memcmp(via_dispatch.data(), q.data(), via_dispatch.size()), 0);

    // An all-zero block is fully zero.
    std::vector<float> zeros(256, 0.0f);
    BlockQ8_K z;
    std::memset(&z, 0xab, sizeof(z));
    quantize_row_q8_k(zeros.data(), &z, 256);
    EXPECT_EQ(z.d, 0.0f);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(z.qs[i], 0);
    for (int g = 0; g < 16; ++g) EXPECT_EQ(z.bsums[g], 0);
}

// ---------------------------------------------------------------------------------------------
// F16 / BF16 through the row API: round-to-nearest-even, subnormals, infinities, NaN.

uint16_t to_f16(float f) {
    uint16_t h = 0;
    quantize_row(DType::F16, &f, &h, 1);
    return h;
}
float from_f16(uint16_t h) {
    float f = 0;
    dequantize_row(DType::F16, &h, &f, 1);
    return f;
}
uint16_t to_bf16(float f) {
    uint16_t h = 0;
    quantize_row(DType::BF16, &f, &h, 1);
    return h;
}
float from_bf16(uint16_t h) {
    float f = 0;
    dequantize_row(DType::BF16, &h, &f, 1);
    return f;
}

TEST(QuantF16, EdgeCases) {
    EXPECT_EQ(to_f16(1.0f), 0x3c00);
    EXPECT_EQ(to_f16(-2.0f), 0xc000);
    EXPECT_EQ(to_f16(0.0f), 0x0000);
    EXPECT_EQ(to_f16(-0.0f), 0x8000);
    EXPECT_EQ(to_f16(65504.0f), 0x7bff);  // largest finite
    EXPECT_EQ(to_f16(65519.99f), 0x7bff);
    EXPECT_EQ(to_f16(65520.0f), 0x7c00);  // halfway to 2^16 rounds (to even) to infinity
    EXPECT_EQ(to_f16(1e10f), 0x7c00);
    EXPECT_EQ(to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
    // Ties to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
    EXPECT_EQ(to_f16(1.0f + 0x1p-11f), 0x3c00);
    EXPECT_EQ(to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    EXPECT_EQ(to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);  // just above the tie
    // Subnormals: the ulp is 2^-24.
    EXPECT_EQ(to_f16(0x1p-24f), 0x0001);
    EXPECT_EQ(to_f16(0x1p-25f), 0x0000);      // tie between 0 and 1 ulp -> 0
    EXPECT_EQ(to_f16(3 * 0x1p-25f), 0x0002);  // tie between 1 and 2 ulps -> 2
    EXPECT_EQ(to_f16(1023 * 0x1p-24f), 0x03ff);
    EXPECT_EQ(to_f16(0x1p-14f), 0x0400);         // smallest normal
    EXPECT_EQ(to_f16(2047 * 0x1p-25f), 0x0400);  // rounds up from subnormal into normal
    EXPECT_EQ(to_f16(1e-30f), 0x0000);
    const uint16_t nan = to_f16(std::numeric_limits<float>::quiet_NaN());
    EXPECT_EQ(nan & 0x7c00, 0x7c00);
    EXPECT_NE(nan & 0x03ff, 0);

    EXPECT_EQ(from_f16(0x3c00), 1.0f);
    EXPECT_EQ(from_f16(0x7bff), 65504.0f);
    EXPECT_EQ(from_f16(0x0001), 0x1p-24f);
    EXPECT_EQ(from_f16(0x03ff), 1023 * 0x1p-24f);
    EXPECT_EQ(from_f16(0x0400), 0x1p-14f);
    EXPECT_EQ(from_f16(0x7c00), std::numeric_limits<float>::infinity());
    EXPECT_EQ(from_f16(0xfc00), -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(from_f16(0x7e00)));
    EXPECT_TRUE(std::signbit(from_f16(0x8000)));
    EXPECT_EQ(from_f16(0x8000), 0.0f);

    // Every finite half survives half -> float -> half.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7c00) == 0x7c00) continue;
        ASSERT_EQ(to_f16(from_f16(static_cast<uint16_t>(h))), static_cast<uint16_t>(h))
            << std::hex << h;
    }
}

TEST(QuantBF16, EdgeCases) {
    EXPECT_EQ(to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(to_bf16(-2.0f), 0xc000);
    EXPECT_EQ(to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(to_bf16(1.0f + 0x1p-8f), 0x3f80);      // tie -> even
    EXPECT_EQ(to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);  // tie -> even (up)
    EXPECT_EQ(to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    EXPECT_EQ(to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
    EXPECT_EQ(to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to infinity
    EXPECT_EQ(to_bf16(std::bit_cast<float>(0x00010000u)), 0x0001);  // subnormals are kept
    EXPECT_EQ(to_bf16(std::bit_cast<float>(0x00018000u)), 0x0002);  // tie -> even (up)
    // A signalling NaN whose payload sits only in the dropped bits must stay a NaN.
    const uint16_t nan = to_bf16(std::bit_cast<float>(0x7f800001u));
    EXPECT_EQ(nan & 0x7f80, 0x7f80);
    EXPECT_NE(nan & 0x007f, 0);

    EXPECT_EQ(from_bf16(0x3f80), 1.0f);
    EXPECT_EQ(from_bf16(0x0001), std::bit_cast<float>(0x00010000u));
    EXPECT_EQ(from_bf16(0xff80), -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(from_bf16(0x7fc0)));
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7f80) == 0x7f80) continue;
        ASSERT_EQ(to_bf16(from_bf16(static_cast<uint16_t>(h))), static_cast<uint16_t>(h))
            << std::hex << h;
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips on random data.

struct ErrorBound {
    DType type;
    double gaussian;  // bound on relative RMS error for N(0, 1) data
    double uniform;   // ... for U(-1, 1) data
};

// Measured with the seeds below (gaussian / uniform): F16 2.1e-4 / 1.8e-4, BF16 1.7e-3 / 1.5e-3,
// Q8_0 5.4e-3 / 3.8e-3, Q6_K 0.0177 / 0.0134, Q5_K 0.0359 / 0.0279, Q5_0 0.0426 / 0.0316,
// Q4_K 0.0714 / 0.0553, Q4_1 0.0782 / 0.0616, Q4_0 0.0865 / 0.0658; the bounds add about 25%.
// They are properties of the formats (step size over block range), so exceeding one means a
// broken level or scale, not a slightly different rounding; exact agreement with ggml is the
// job of LlamaCppBitExact below.
constexpr ErrorBound kErrorBounds[] = {
    {DType::F32, 0.0, 0.0},      {DType::F16, 3e-4, 2.5e-4},  {DType::BF16, 2.2e-3, 2e-3},
    {DType::Q8_0, 7e-3, 5e-3},   {DType::Q6_K, 0.022, 0.017}, {DType::Q5_K, 0.045, 0.035},
    {DType::Q5_0, 0.053, 0.040}, {DType::Q4_K, 0.089, 0.069}, {DType::Q4_1, 0.098, 0.077},
    {DType::Q4_0, 0.11, 0.082},
};

TEST(QuantRoundTrip, RelativeRmsErrorBounds) {
    const std::vector<float> g = gaussian(256 * 64, 1234);
    std::vector<float> u(256 * 64);
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& v : u) v = dist(rng);
    for (const ErrorBound& b : kErrorBounds) {
        const double eg = relative_rms_error(b.type, g);
        const double eu = relative_rms_error(b.type, u);
        RecordProperty(std::string(dtype_name(b.type)) + "_gaussian", std::to_string(eg));
        RecordProperty(std::string(dtype_name(b.type)) + "_uniform", std::to_string(eu));
        EXPECT_LE(eg, b.gaussian) << dtype_name(b.type);
        EXPECT_LE(eu, b.uniform) << dtype_name(b.type);
    }
}

TEST(QuantRoundTrip, ScaleInvariance) {
    // Scaling the data by a power of two scales every block's fp16 scale exactly (while it stays
    // a normal half), so the levels do not change and the decoded values scale exactly. F16 is
    // left out: its subnormals (|x| < 2^-14) have a fixed step, so they are not scale-free.
    const std::vector<float> x = gaussian(256 * 8, 5);
    for (DType t : kWeightTypes) {
        if (t == DType::F16) continue;
        std::vector<float> scaled(x);
        for (float& v : scaled) v *= 0x1p4f;
        std::vector<float> y = dequantize(t, quantize(t, x), x.size());
        const std::vector<float> ys = dequantize(t, quantize(t, scaled), x.size());
        for (size_t i = 0; i < x.size(); ++i)
            ASSERT_EQ(ys[i], y[i] * 0x1p4f) << dtype_name(t) << " " << i;
    }
}

TEST(QuantRoundTrip, DeterministicAndStable) {
    const std::vector<float> x = gaussian(256 * 16, 42);
    for (DType t : kWeightTypes) {
        SCOPED_TRACE(std::string(dtype_name(t)));
        const std::vector<uint8_t> q1 = quantize(t, x);
        EXPECT_EQ(quantize(t, x), q1);
        // Requantizing the decoded values must not lose more: the second round trip stays at
        // least as close to the first decode as the first was to the data.
        const std::vector<float> y1 = dequantize(t, q1, x.size());
        const std::vector<uint8_t> q2 = quantize(t, y1);
        const std::vector<float> y2 = dequantize(t, q2, x.size());
        double e1 = 0;
        double e2 = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            e1 += (static_cast<double>(x[i]) - y1[i]) * (static_cast<double>(x[i]) - y1[i]);
            e2 += (static_cast<double>(y1[i]) - y2[i]) * (static_cast<double>(y1[i]) - y2[i]);
        }
        EXPECT_LE(e2, e1);
    }
}

TEST(QuantRoundTrip, SimpleFormatsAreIdempotent) {
    // A decoded block of the symmetric / min-max formats requantizes to the same bytes.
    const std::vector<float> x = gaussian(32 * 64, 77);
    for (DType t : {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q5_0}) {
        const std::vector<uint8_t> q = quantize(t, x);
        EXPECT_EQ(quantize(t, dequantize(t, q, x.size())), q) << dtype_name(t);
    }
}

TEST(QuantRoundTrip, ZerosDecodeToZeros) {
    const std::vector<float> zeros(512, 0.0f);
    for (DType t : kWeightTypes) {
        const std::vector<float> y = dequantize(t, quantize(t, zeros), zeros.size());
        for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
    }
}

TEST(QuantRoundTrip, ConstantBlocks) {
    // A constant block needs only one level; what is left is the fp16 rounding of the scales
    // (2^-11 relative) and, for the K formats, of the 6/8-bit sub-block scales against them.
    std::vector<float> x(512, 0.75f);
    for (DType t : kWeightTypes) {
        const std::vector<float> y = dequantize(t, quantize(t, x), x.size());
        for (float v : y) ASSERT_NEAR(v, 0.75f, 0.75f * 2e-3f) << dtype_name(t);
    }
}

TEST(QuantDispatch, UnsupportedTypesNameTheType) {
    float x[256] = {};
    uint8_t buf[1024] = {};
    for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q5_1, DType::I32}) {
        try {
            quantize_row(t, x, buf, 256);
            ADD_FAILURE() << "quantize_row accepted " << dtype_name(t);
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(std::string(dtype_name(t))), std::string::npos)
                << e.what();
        }
        try {
            dequantize_row(t, buf, x, 256);
            ADD_FAILURE() << "dequantize_row accepted " << dtype_name(t);
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(std::string(dtype_name(t))), std::string::npos)
                << e.what();
        }
    }
    EXPECT_THROW(quantize_row(DType::Q4_K, x, buf, 128), Error);  // not a whole super-block
    EXPECT_THROW(dequantize_row(DType::Q8_0, buf, x, 33), Error);
}

// ---------------------------------------------------------------------------------------------
// Bit-exactness with llama.cpp: the reference pack holds the same random weights as f32 and as
// llama-quantize wrote them in each type (mixed types per tensor in the _k_m files). Quantizing
// the f32 tensors must give the very same bytes.

class LlamaCppBitExact : public ::testing::TestWithParam<const char*> {};

TEST_P(LlamaCppBitExact, QuantizeMatchesLlamaQuantize) {
    const std::string f32_path = test::shared_path("models/ref/ref-llama-spm.f32.gguf");
    const std::string q_path =
        test::shared_path(std::string("models/ref/ref-llama-spm.") + GetParam() + ".gguf");
    if (!std::filesystem::exists(f32_path) || !std::filesystem::exists(q_path))
        GTEST_SKIP() << "reference pack not present: " << q_path;
    const auto f32 = GgufFile::open(f32_path);
    const auto qf = GgufFile::open(q_path);

    std::set<std::string> types_seen;
    int quantized_tensors = 0;
    for (const GgufTensor& qt : qf->tensors()) {
        SCOPED_TRACE(qt.name + " (" + std::string(dtype_name(qt.type)) + ")");
        const GgufTensor* ft = f32->find_tensor(qt.name);
        ASSERT_NE(ft, nullptr);
        ASSERT_EQ(ft->type, DType::F32);
        ASSERT_EQ(ft->ne, qt.ne);
        types_seen.insert(std::string(dtype_name(qt.type)));
        if (qt.type != DType::F32) ++quantized_tensors;

        const int64_t n = qt.ne[0];
        const int64_t rows = qt.n_elements() / n;
        const size_t rb = row_bytes(qt.type, n);
        ASSERT_EQ(qt.nbytes, rb * static_cast<size_t>(rows));
        const auto* src = reinterpret_cast<const float*>(ft->data);

        std::vector<uint8_t> mine(qt.nbytes);
        for (int64_t r = 0; r < rows; ++r)
            quantize_row(qt.type, src + r * n, mine.data() + r * rb, n);
        int64_t bad_rows = 0;
        int64_t first_bad = -1;
        for (int64_t r = 0; r < rows; ++r) {
            if (std::memcmp(mine.data() + r * rb, qt.data + r * rb, rb) != 0) {
                if (first_bad < 0) first_bad = r;
                ++bad_rows;
            }
        }
        if (bad_rows > 0) {
            const uint8_t* a = mine.data() + first_bad * rb;
            const uint8_t* b = qt.data + first_bad * rb;
            size_t byte = 0;
            while (a[byte] == b[byte]) ++byte;
            const size_t block_bytes = dtype_traits(qt.type).type_size;
            ADD_FAILURE() << bad_rows << " of " << rows << " rows differ; first: row " << first_bad
                          << ", block " << byte / block_bytes << ", byte " << byte % block_bytes
                          << " (ours " << int(a[byte]) << ", llama.cpp " << int(b[byte]) << ")";
        }

        // Decoding llama.cpp's bytes and ours gives the same floats (bitwise).
        std::vector<float> from_theirs(static_cast<size_t>(qt.n_elements()));
        std::vector<float> from_mine(from_theirs.size());
        for (int64_t r = 0; r < rows; ++r) {
            dequantize_row(qt.type, qt.data + r * rb, from_theirs.data() + r * n, n);
            dequantize_row(qt.type, mine.data() + r * rb, from_mine.data() + r * n, n);
        }
        EXPECT_EQ(
            std::memcmp(from_theirs.data(), from_mine.data(), from_mine.size() * sizeof(float)), 0);
    }
    EXPECT_GT(quantized_tensors, 0);
    std::string seen;
    for (const auto& t : types_seen) seen += t + " ";
    RecordProperty("types", seen);
}

INSTANTIATE_TEST_SUITE_P(RefPack, LlamaCppBitExact,
                         ::testing::Values("f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q6_k",
                                           "q4_k_m", "q5_k_m"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace mllm

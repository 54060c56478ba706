// The matmul tests' weights and reference, for every weight type: random weights whose every bit
// of every block layout matters, and y = x W^T in double from core/quant's dequantization with
// the magnitude that bounds its rounding (tests/backends/vulkan_*_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant/quant.h"
#include "tests/support/quant_matmul_problem.h"

namespace mllm::test {

inline bool is_float(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

// `rows` rows of k elements of type t: random floats (every 29th tiny, a half subnormal), or
// random quant bytes whose fp16 fields are modest random values, every seventh block's
// subnormal (a shader must not flush it).
inline std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t k, std::mt19937& rng) {
    std::vector<uint8_t> w(row_bytes(t, k) * static_cast<size_t>(rows));
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    if (is_float(t)) {
        const size_t size = t == DType::F32 ? 4 : 2;
        for (size_t i = 0; i * size < w.size(); ++i) {
            float v = value(rng);
            if (i % 29 == 5) v *= 1e-6f;  // a half subnormal
            if (t == DType::F32) {
                std::memcpy(w.data() + 4 * i, &v, 4);
            } else {
                const uint16_t h = t == DType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
                std::memcpy(w.data() + 2 * i, &h, 2);
            }
        }
        return w;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
    std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
    const size_t block = dtype_traits(t).type_size;
    for (size_t off = 0, n = 0; off < w.size(); off += block, ++n) {
        for (size_t field : cpu::matmul_check::half_fields(t)) {
            // Every seventh block's scale is subnormal: the shader must not flush it.
            const uint16_t h = n % 7 == 3 ? static_cast<uint16_t>(0x8000u * (n % 2) + 1 + n % 1000)
                                          : fp32_to_fp16(scale(rng));
            std::memcpy(w.data() + off + field, &h, 2);
        }
    }
    return w;
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1.0f,
                                        float hi = 1.0f) {
    std::vector<float> v(n);
    std::uniform_real_distribution<float> value(lo, hi);
    for (float& f : v) f = value(rng);
    return v;
}

// The activation as the CPU backend multiplies it with weights of type t.
inline float activation(DType t, float v) {
    if (t == DType::F16) return fp16_to_fp32(fp32_to_fp16(v));
    if (t == DType::BF16) return bf16_to_fp32(fp32_to_bf16(v));
    return v;
}

// y[t, r] (token-major, m apart) in double, and the sum of |w x| (+ |bias|) for the tolerance.
struct Reference {
    std::vector<double> y, magnitude;
};

inline Reference reference_matmul(DType t, const std::vector<uint8_t>& w,
                                  const std::vector<float>& x, int64_t m, int64_t k, int64_t n,
                                  const std::vector<float>& bias = {}) {
    Reference ref;
    ref.y.assign(static_cast<size_t>(m * n), 0.0);
    ref.magnitude.assign(static_cast<size_t>(m * n), 0.0);
    std::vector<float> row(static_cast<size_t>(k));
    const size_t rb = row_bytes(t, k);
    for (int64_t r = 0; r < m; ++r) {
        dequantize_row(t, w.data() + static_cast<size_t>(r) * rb, row.data(), k);
        for (int64_t tok = 0; tok < n; ++tok) {
            double s = bias.empty() ? 0.0 : bias[r];
            double a = std::fabs(s);
            for (int64_t i = 0; i < k; ++i) {
                const double p = static_cast<double>(row[i]) * activation(t, x[tok * k + i]);
                s += p;
                a += std::fabs(p);
            }
            ref.y[tok * m + r] = s;
            ref.magnitude[tok * m + r] = a;
        }
    }
    return ref;
}

inline double tolerance(double magnitude) {
    return 3e-5 * magnitude + 1e-6;
}

// x [n, k] rounded to Q8_0 blocks, as the CPU backend multiplies it with quantized weights.
inline std::vector<float> rounded_to_q8_0(const std::vector<float>& x, int64_t k) {
    std::vector<float> out(x.size());
    std::vector<uint8_t> q8(row_bytes(DType::Q8_0, k));
    for (size_t at = 0; at < x.size(); at += static_cast<size_t>(k)) {
        quantize_row(DType::Q8_0, x.data() + at, q8.data(), k);
        dequantize_row(DType::Q8_0, q8.data(), out.data() + at, k);
    }
    return out;
}

// Compares y (token-major, m apart) with the reference; at most a few failures per call.
inline void expect_close(const std::vector<float>& y, const Reference& ref, int64_t m) {
    ASSERT_EQ(y.size(), ref.y.size());
    int bad = 0;
    for (size_t i = 0; i < y.size() && bad < 5; ++i) {
        const double tol = tolerance(ref.magnitude[i]);
        if (!(std::fabs(y[i] - ref.y[i]) <= tol)) {
            ADD_FAILURE() << "y[token " << i / m << ", row " << i % m << "] = " << y[i]
                          << ", reference " << ref.y[i] << " (tolerance " << tol << ")";
            ++bad;
        }
    }
}

}  // namespace mllm::test

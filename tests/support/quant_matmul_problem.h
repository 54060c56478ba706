#pragma once
// The quantized-matmul problems both kernel checks build (tests/backends/quant_matmul_test.cpp
// under GoogleTest, tests/neon/neon_kernel_check.cpp cross-built for aarch64 without it): random
// weights and activations of every format, and the double-precision reference with its error
// bounds. No test framework here, so both can include it.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels/cpu_features.h"
#include "backends/cpu/kernels/quant_matmul.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant/blocks.h"
#include "core/quant/quant.h"

namespace mllm::cpu::matmul_check {

// Byte offsets of the fp16 fields (scales, mins) inside one block of each format.
inline std::vector<size_t> half_fields(DType t) {
    switch (t) {
        case DType::Q4_0:
        case DType::Q5_0:
        case DType::Q8_0:
            return {0};
        case DType::Q4_1:
            return {0, 2};
        case DType::Q4_K:
        case DType::Q5_K:
            return {0, 2};
        case DType::Q6_K:
            return {offsetof(BlockQ6_K, d)};
        default:
            return {};
    }
}

// A rows x k weight matrix of type t: random floats for the float types; random bytes for the
// quantized ones, with every fp16 field replaced by a modest random value (either sign).
inline std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t k, std::mt19937& rng) {
    const size_t rb = row_bytes(t, k);
    std::vector<uint8_t> w(rb * static_cast<size_t>(rows));
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    const int64_t n = rows * k;
    if (t == DType::F32) {
        for (int64_t i = 0; i < n; ++i) {
            const float v = value(rng);
            std::memcpy(w.data() + 4 * i, &v, 4);
        }
        return w;
    }
    if (t == DType::F16 || t == DType::BF16) {
        for (int64_t i = 0; i < n; ++i) {
            const float v = value(rng);
            const uint16_t h = t == DType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
            std::memcpy(w.data() + 2 * i, &h, 2);
        }
        return w;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
    const DTypeTraits& traits = dtype_traits(t);
    std::uniform_real_distribution<float> scale(0.001f, 0.01f);
    for (size_t off = 0; off < w.size(); off += traits.type_size) {
        for (size_t field : half_fields(t)) {
            const float s = (byte(rng) & 1 ? -1.0f : 1.0f) * scale(rng);
            const uint16_t h = fp32_to_fp16(s);
            std::memcpy(w.data() + off + field, &h, 2);
        }
    }
    return w;
}

// Activations with varied magnitudes per 32 elements and, in token 1, an all-zero first block
// (a zero activation scale): 256 elements when k leaves others nonzero, else 32.
inline std::vector<float> random_activations(int64_t n_tokens, int64_t k, std::mt19937& rng) {
    std::vector<float> x(static_cast<size_t>(n_tokens * k));
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::uniform_real_distribution<float> magnitude(0.1f, 4.0f);
    for (int64_t i = 0; i < n_tokens * k; i += 32) {
        const float m = magnitude(rng);
        for (int64_t j = i; j < std::min(i + 32, n_tokens * k); ++j) x[j] = m * value(rng);
    }
    if (n_tokens > 1)
        for (int64_t j = 0; j < (k >= 512 ? 256 : std::min<int64_t>(32, k)); ++j) x[k + j] = 0.0f;
    return x;
}

struct Shape {
    int64_t k;
    int64_t rows;       // rows of the matrix
    int64_t row_begin;  // the kernel computes [row_begin, rows)
    int64_t n_tokens;
};

inline std::string describe(DType t, const Shape& s, Isa isa) {
    return std::string(dtype_name(t)) + " k=" + std::to_string(s.k) + " rows=[" +
           std::to_string(s.row_begin) + "," + std::to_string(s.rows) +
           ") tokens=" + std::to_string(s.n_tokens) + " isa=" + isa_name(isa);
}

struct Problem {
    DType type;
    Shape shape;
    std::vector<uint8_t> w;
    std::vector<float> x;
    std::vector<uint8_t> act;  // quantized activation rows
    size_t w_rb = 0;
    size_t act_rb = 0;
};

inline Problem make_problem(DType t, const Shape& s, std::mt19937& rng) {
    Problem p{t,
              s,
              random_weights(t, s.rows, s.k, rng),
              random_activations(s.n_tokens, s.k, rng),
              {},
              row_bytes(t, s.k),
              row_bytes(activation_type(t), s.k)};
    p.act.resize(p.act_rb * static_cast<size_t>(s.n_tokens));
    for (int64_t tok = 0; tok < s.n_tokens; ++tok)
        quantize_activation_row(t, p.x.data() + tok * s.k, p.act.data() + tok * p.act_rb, s.k);
    return p;
}

// Runs the kernels of isa; rows outside [row_begin, rows) and the padding of each output row
// must stay untouched (NaN here).
inline std::vector<float> run(const Problem& p, Isa isa, int64_t ldy) {
    std::vector<float> y(static_cast<size_t>(ldy * p.shape.n_tokens), std::nanf(""));
    quant_matmul_isa(isa, p.type, p.shape.k, p.w.data(), p.w_rb, p.shape.row_begin, p.shape.rows,
                     p.act.data(), p.act_rb, p.shape.n_tokens, y.data(), ldy);
    return y;
}

struct Reference {
    std::vector<double> exact;      // dequantized weights . dequantized activations
    std::vector<double> exact_mag;  // sum |w * x_q|
    std::vector<double> fp;         // dequantized weights . original activations
    std::vector<double> fp_bound;   // activation quantization error bound + rounding
};

// Per element, the most its quantized activation may be off: rounding to the nearest step is
// off by half a step (step = block amax / 127 for Q8_0 and Q8_K), and the fp16 rounding of
// Q8_0's scale adds up to 127 * 2^-11 of a step. F16/BF16 weights take activations rounded to
// their precision (half an ulp: 2^-11 and 2^-8 relative); f32 weights take them exactly.
inline std::vector<double> activation_error_bound(const float* x, int64_t k, int64_t block,
                                                  DType weight) {
    std::vector<double> bound(static_cast<size_t>(k), 0.0);
    if (block == 1) {
        const double rel = weight == DType::F16    ? std::ldexp(1.0, -11)
                           : weight == DType::BF16 ? std::ldexp(1.0, -8)
                                                   : 0.0;
        for (int64_t j = 0; j < k; ++j) bound[j] = rel * std::fabs(double(x[j]));
        return bound;
    }
    for (int64_t start = 0; start < k; start += block) {
        double amax = 0;
        for (int64_t j = start; j < start + block; ++j)
            amax = std::max(amax, std::fabs(double(x[j])));
        for (int64_t j = start; j < start + block; ++j) bound[j] = 0.57 * amax / 127.0;
    }
    return bound;
}

inline Reference reference(const Problem& p) {
    const Shape& s = p.shape;
    const DType at = activation_type(p.type);
    const int64_t act_block = dtype_traits(at).block_size;
    Reference ref;
    std::vector<float> wf(static_cast<size_t>(s.rows * s.k)), xq(s.k);
    for (int64_t r = 0; r < s.rows; ++r)
        dequantize_row(p.type, p.w.data() + r * p.w_rb, wf.data() + r * s.k, s.k);
    for (int64_t tok = 0; tok < s.n_tokens; ++tok) {
        const float* x = p.x.data() + tok * s.k;
        dequantize_row(at, p.act.data() + tok * p.act_rb, xq.data(), s.k);
        const std::vector<double> x_err = activation_error_bound(x, s.k, act_block, p.type);
        for (int64_t r = 0; r < s.rows; ++r) {
            const float* wrow = wf.data() + r * s.k;
            double exact = 0, mag = 0, fp = 0, bound = 0;
            for (int64_t i = 0; i < s.k; ++i) {
                exact += double(wrow[i]) * xq[i];
                mag += std::fabs(double(wrow[i]) * xq[i]);
                fp += double(wrow[i]) * x[i];
                bound += std::fabs(double(wrow[i])) * x_err[i];
            }
            ref.exact.push_back(exact);
            ref.exact_mag.push_back(mag);
            ref.fp.push_back(fp);
            ref.fp_bound.push_back(bound);
        }
    }
    return ref;
}

// Float rounding bound for summing `terms` products of total magnitude mag: each term's
// scale product and the running sum round once or twice; 4x headroom for the K formats,
// whose two terms per super-block (scales and mins) may partly cancel.
inline double rounding_tol(double mag, int64_t terms) {
    return 4.0 * double(terms + 16) * std::ldexp(1.0, -24) * mag + 1e-30;
}

inline int64_t float_terms(const Problem& p) {
    const int64_t block = dtype_traits(p.type).block_size;
    return block == 1 ? p.shape.k : 2 * (p.shape.k / block);
}

// A Q4_0 problem whose weights have the two nibbles of every byte swapped (elements j and j + 16
// trade places) after its reference was taken (into *ref): a kernel that pairs weights with the
// wrong activations. The tolerances must reject every one of its outputs
// (count_outside_tolerance).
inline Problem swapped_nibbles_problem(Reference* ref) {
    std::mt19937 rng(7);
    Problem p = make_problem(DType::Q4_0, Shape{256, 8, 0, 3}, rng);
    *ref = reference(p);
    for (size_t off = 0; off < p.w.size(); off += sizeof(BlockQ4_0))
        for (size_t j = 2; j < sizeof(BlockQ4_0); ++j)
            p.w[off + j] = static_cast<uint8_t>((p.w[off + j] << 4) | (p.w[off + j] >> 4));
    return p;
}

// How many of y (run(p, ...) with ldy = rows) are outside the rounding tolerance of ref.exact.
inline size_t count_outside_tolerance(const Problem& p, const Reference& ref,
                                      const std::vector<float>& y) {
    size_t outside = 0;
    for (size_t i = 0; i < y.size(); ++i)
        outside += std::fabs(y[i] - ref.exact[i]) > rounding_tol(ref.exact_mag[i], float_terms(p));
    return outside;
}

// " r=.. tok=.. got=.. want=.. tol=..": where a check failed.
inline std::string at(int64_t r, int64_t tok, double got, double want, double tol) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), " r=%lld tok=%lld got=%.9g want=%.9g tol=%.3g",
                  static_cast<long long>(r), static_cast<long long>(tok), got, want, tol);
    return buf;
}

// The first way the kernels of `isa` fail problem p, or "" when they pass: every output within
// float rounding of the dequantized product (ref.exact) and within the activation quantization's
// bound of the float one (ref.fp); rows outside [row_begin, rows) and each output row's padding
// left untouched (NaN).
inline std::string reference_mismatch(const Problem& p, Isa isa, const Reference& ref) {
    const Shape& s = p.shape;
    const int64_t ldy = s.rows + 3;
    const std::vector<float> y = run(p, isa, ldy);
    const int64_t terms = float_terms(p);
    for (int64_t tok = 0; tok < s.n_tokens; ++tok) {
        for (int64_t r = 0; r < ldy; ++r) {
            const float got = y[tok * ldy + r];
            if (r < s.row_begin || r >= s.rows) {
                if (!std::isnan(got)) return "wrote outside its rows" + at(r, tok, got, 0, 0);
                continue;
            }
            const size_t i = static_cast<size_t>(tok * s.rows + r);
            const double tol = rounding_tol(ref.exact_mag[i], terms);
            if (!(std::fabs(got - ref.exact[i]) <= tol))
                return "vs dequantized" + at(r, tok, got, ref.exact[i], tol);
            if (!(std::fabs(got - ref.fp[i]) <= ref.fp_bound[i] + 2 * tol))
                return "vs float activations" + at(r, tok, got, ref.fp[i], ref.fp_bound[i]);
        }
    }
    return "";
}

// The first output of rows [row_begin, rows) where a SIMD set's result (simd, from run(p, isa,
// rows)) strays from the scalar kernels' (scalar, the same way) by more than the order of float
// additions explains (a quarter of the rounding tolerance: both form the same integer sums), or
// "" when none does.
inline std::string scalar_mismatch(const Problem& p, const Reference& ref,
                                   const std::vector<float>& scalar,
                                   const std::vector<float>& simd) {
    const Shape& s = p.shape;
    for (int64_t tok = 0; tok < s.n_tokens; ++tok) {
        for (int64_t r = s.row_begin; r < s.rows; ++r) {
            const size_t i = static_cast<size_t>(tok * s.rows + r);
            const double tol = 0.25 * rounding_tol(ref.exact_mag[i], float_terms(p));
            if (!(std::fabs(double(simd[i]) - scalar[i]) <= tol))
                return "vs scalar" + at(r, tok, simd[i], scalar[i], tol);
        }
    }
    return "";
}

// The first output (both from run(p, ..., rows)) whose bits differ between want and got, or "".
inline std::string bit_mismatch(const Problem& p, const std::vector<float>& want,
                                const std::vector<float>& got) {
    const int64_t rows = p.shape.rows;
    for (size_t i = 0; i < want.size(); ++i) {
        if (std::memcmp(&want[i], &got[i], sizeof(float)) != 0) {
            const auto at_i = static_cast<int64_t>(i);
            return "not bit-identical" + at(at_i % rows, at_i / rows, got[i], want[i], 0);
        }
    }
    return "";
}

// Real quantizer output (not random bytes) through the default dispatch: k x rows weights drawn
// from N(0, 0.05^2) and quantized by quantize_row, n_tokens activations from N(0, 1) through
// quantize_activation_row. Per output (token-major): the kernel's value, the double-precision dot
// of the dequantized weights with the float activations, and the sum of the products'
// magnitudes; 8-bit activations keep |y - dot| within about 1% of it.
struct FromFloats {
    std::vector<float> y;
    std::vector<double> dot;
    std::vector<double> mag;
};

inline FromFloats matmul_from_floats(DType t, int64_t k, int64_t rows, int64_t n_tokens,
                                     std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> wf(static_cast<size_t>(rows * k)), x(static_cast<size_t>(n_tokens * k));
    for (auto& v : wf) v = 0.05f * normal(rng);
    for (auto& v : x) v = normal(rng);
    const size_t wrb = row_bytes(t, k);
    const size_t arb = row_bytes(activation_type(t), k);
    std::vector<uint8_t> w(wrb * rows), act(arb * n_tokens);
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * k, w.data() + r * wrb, k);
    for (int64_t tok = 0; tok < n_tokens; ++tok)
        quantize_activation_row(t, x.data() + tok * k, act.data() + tok * arb, k);
    FromFloats out;
    out.y.resize(static_cast<size_t>(rows * n_tokens));
    out.dot.resize(out.y.size());
    out.mag.resize(out.y.size());
    quant_matmul(t, k, w.data(), wrb, 0, rows, act.data(), arb, n_tokens, out.y.data(), rows);
    std::vector<float> wrow(k);
    for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(t, w.data() + r * wrb, wrow.data(), k);
        for (int64_t tok = 0; tok < n_tokens; ++tok) {
            double dot = 0, mag = 0;
            for (int64_t i = 0; i < k; ++i) {
                dot += double(wrow[i]) * x[tok * k + i];
                mag += std::fabs(double(wrow[i]) * x[tok * k + i]);
            }
            out.dot[static_cast<size_t>(tok * rows + r)] = dot;
            out.mag[static_cast<size_t>(tok * rows + r)] = mag;
        }
    }
    return out;
}

}  // namespace mllm::cpu::matmul_check

#include "backends/vulkan/vk_self_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/vulkan/ops/vk_round_activations.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quant/quant.h"

namespace mllm::vk::self_test {

std::vector<float> random_floats(size_t n, uint64_t seed) {
    std::vector<float> v(n);
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (float& f : v) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        f = static_cast<float>(static_cast<double>(s >> 40) / static_cast<double>(1 << 24) * 2 - 1);
    }
    return v;
}

void round_rows(DType type, float* v, int64_t rows, int64_t cols) {
    std::vector<uint8_t> tmp(row_bytes(type, cols));
    for (int64_t r = 0; r < rows; ++r) {
        quantize_row(type, v + r * cols, tmp.data(), cols);
        dequantize_row(type, tmp.data(), v + r * cols, cols);
    }
}

Allocation upload(Context& ctx, const void* data, size_t bytes) {
    Allocation a = ctx.memory().allocate(std::max<size_t>(bytes, 16));
    ctx.write(a, 0, data, bytes);
    return a;
}

Allocation upload(Context& ctx, const std::vector<float>& v) {
    return upload(ctx, v.data(), v.size() * sizeof(float));
}

std::vector<float> download(Context& ctx, const Allocation& a, size_t n) {
    std::vector<float> v(n);
    ctx.read(a, 0, v.data(), n * sizeof(float));
    return v;
}

std::string compare(const std::vector<float>& got, const std::vector<double>& want,
                    const std::vector<double>& tolerance) {
    for (size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
        if (!(err <= tolerance[i]))
            return str_cat("element ", i, " is ", got[i], ", expected ", want[i]);
    }
    return "";
}

std::vector<double> tolerance(const std::vector<double>& want, double relative, double absolute) {
    std::vector<double> t(want.size());
    for (size_t i = 0; i < want.size(); ++i) t[i] = relative * std::fabs(want[i]) + absolute;
    return t;
}

std::string check_rounded(Context& ctx, const Allocation& rounded, const std::vector<float>& y,
                          int64_t rows, int64_t cols, bool packed) {
    std::vector<uint8_t> blocks(row_bytes(DType::Q8_0, cols));
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<double> want;
    for (int64_t r = 0; r < rows; ++r) {
        quantize_row(DType::Q8_0, y.data() + r * cols, blocks.data(), cols);
        dequantize_row(DType::Q8_0, blocks.data(), row.data(), cols);
        want.insert(want.end(), row.begin(), row.end());
    }
    std::vector<float> got;
    if (packed) {
        const int64_t words = q8_0_packed_words(cols);
        const std::vector<float> raw = download(ctx, rounded, static_cast<size_t>(rows * words));
        for (int64_t r = 0; r < rows; ++r) {
            const float* w = raw.data() + r * words;
            for (int64_t i = 0; i < cols; ++i) {
                uint32_t word = 0;
                std::memcpy(&word, w + i / 4, 4);
                const auto q = static_cast<int8_t>((word >> (8 * (i % 4))) & 0xffu);
                got.push_back(static_cast<float>(q) * w[cols / 4 + i / 32]);
            }
        }
    } else {
        got = download(ctx, rounded, want.size());
    }
    const std::string err = compare(got, want, tolerance(want, 1e-6, 0));
    return err.empty() ? "" : "rounded copy: " + err;
}

std::string check_cache_rows(Context& ctx, const Allocation& kc, const Allocation& vc,
                             const std::vector<double>& keys, const std::vector<float>& values,
                             std::span<const int32_t> positions, int64_t n_ctx) {
    const size_t width = keys.size() / positions.size();
    for (int cache = 0; cache < 2; ++cache) {
        std::vector<uint16_t> halfs(static_cast<size_t>(n_ctx) * width);
        ctx.read(cache == 0 ? kc : vc, 0, halfs.data(), halfs.size() * 2);
        for (int64_t row = 0; row < n_ctx; ++row) {
            const auto r = std::find(positions.begin(), positions.end(), row);
            for (size_t i = 0; i < width; ++i) {
                const uint16_t h = halfs[static_cast<size_t>(row) * width + i];
                if (r == positions.end()) {
                    if (h != 0x7e00u) return str_cat("cache row ", row, " was written");
                    continue;
                }
                const size_t at = static_cast<size_t>(r - positions.begin()) * width + i;
                const double want = cache == 0 ? keys[at] : values[at];
                // f16 rounding (2^-11 relative) on top of sin and cos's 2^-11.
                if (!(std::fabs(fp16_to_fp32(h) - want) <= 2e-3 + 1e-3 * std::fabs(want)))
                    return str_cat(cache == 0 ? "key" : "value", " cache row ", row, " element ", i,
                                   " is ", fp16_to_fp32(h), ", expected ", want);
            }
        }
    }
    return "";
}

}  // namespace mllm::vk::self_test

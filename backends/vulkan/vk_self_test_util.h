#pragma once
// What the self-test's cases (vk_self_test*.cpp) share: random inputs, device buffers in and out,
// one-sequence runs, and comparisons with the host reference that say where a result is off.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_sequence.h"
#include "core/dtype.h"

namespace mllm::vk::self_test {

// n values in [-1, 1) from a fixed generator (the same on every machine).
std::vector<float> random_floats(size_t n, uint64_t seed);
// `rows` rows of `cols` values rounded in place to `type` (quantized and back), as the CPU
// backend multiplies activations with some weights.
void round_rows(DType type, float* v, int64_t rows, int64_t cols);
Allocation upload(Context& ctx, const void* data, size_t bytes);
Allocation upload(Context& ctx, const std::vector<float>& v);
std::vector<float> download(Context& ctx, const Allocation& a, size_t n);

// Records what `body` records into a fresh sequence and runs it.
template <typename F>
void run(Context& ctx, F&& body) {
    Sequence seq(ctx.device());
    seq.begin();
    body(seq);
    seq.end();
    seq.run();
}

// "" when every |got - want| <= tolerance[i], else where and by how much it is off.
std::string compare(const std::vector<float>& got, const std::vector<double>& want,
                    const std::vector<double>& tolerance);
// relative * |want[i]| + absolute for each element.
std::vector<double> tolerance(const std::vector<double>& want, double relative, double absolute);
// "" when `rounded` holds y's rows rounded to Q8_0 blocks as core/quant rounds them (a kernel
// that rounds its own output for the matmuls after it): floats, or `packed` as
// round_activations packs them (int8 quants, then f32 scales), compared as the floats they
// stand for.
std::string check_rounded(Context& ctx, const Allocation& rounded, const std::vector<float>& y,
                          int64_t rows, int64_t cols, bool packed = false);
// "" when the f16 caches kc and vc (rows of keys.size() / positions halfs) hold the keys and
// values of each row at its position, and rows at no position hold the 0x7e00 (NaN) they were
// filled with.
std::string check_cache_rows(Context& ctx, const Allocation& kc, const Allocation& vc,
                             const std::vector<double>& keys, const std::vector<float>& values,
                             std::span<const int32_t> positions, int64_t n_ctx);

// The matmul family of a weight type (vk_self_test_matmul.cpp): plain, and the folding kernels
// the device runs for it.
std::string test_matmul(Context& ctx, DType type);

}  // namespace mllm::vk::self_test
